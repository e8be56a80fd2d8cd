//! The burrow plugin SDK.
//!
//! Plugin authors depend on this crate, never on burrow itself. The WIT worlds
//! (`log-driver`, `network-driver`) and their guest bindings arrive with the
//! plugin-host issue; until then this crate only reserves the name and layout.
