//! The burrow plugin SDK.
//!
//! Plugin authors depend on this crate, never on burrow itself. It carries the WIT worlds
//! (`wit/burrow.wit`: `log-driver` and `network-driver`, package `burrow:plugin@1.0.0`) and
//! the guest bindings generated from them.
//!
//! A log driver implements [`log::Guest`] (and the `GuestLogger` / `GuestReader` resources)
//! and exports itself with [`log::export_log_driver!`]; build it with
//! `cargo build --release --target wasm32-wasip2`.

/// Bindings for the `log-driver` world.
pub mod log {
    wit_bindgen::generate!({
        world: "log-driver",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export_log_driver",
        default_bindings_module: "burrow_plugin_sdk::log",
    });
    pub use exports::burrow::plugin::logging::{Guest, GuestLogger, GuestReader, Logger, Reader};
    pub use burrow::plugin::types::{Capabilities, Error, Kv, PluginInfo};
    pub use burrow::plugin::log_types::*;
    pub use burrow::plugin::{diag, endpoints, http, secrets};
}

/// Bindings for the `network-driver` world.
pub mod net {
    wit_bindgen::generate!({
        world: "network-driver",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export_network_driver",
        default_bindings_module: "burrow_plugin_sdk::net",
    });
    pub use exports::burrow::plugin::networking::Guest;
    pub use burrow::plugin::types::{Capabilities, Error, Kv, PluginInfo};
    pub use burrow::plugin::net_types::*;
    pub use burrow::plugin::diag;
}
