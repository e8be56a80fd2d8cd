//! The host side of networking (../shared/DESIGN.md, `network/`): address management now;
//! the executor that validates and applies driver plans, and the per-user network holder,
//! come next.

pub mod ipam;
