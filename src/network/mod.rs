//! The host side of networking (../shared/DESIGN.md, `network/`): address management and
//! the executor that checks and applies driver plans over rtnetlink. The per-user network
//! holder (which will call the executor inside its user namespace: setns into a user
//! namespace needs a single-threaded process, into a network namespace only a thread) comes
//! next.

// The executor is called by the network holder, the next step; until then only its tests do.
#[cfg_attr(not(test), allow(dead_code))]
pub mod executor;
pub mod ipam;
