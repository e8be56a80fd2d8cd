//! The host side of the `network-driver` world: a network driver computes (a network's
//! defaults, the plan that connects a container) and the host applies. Each call gets a
//! fresh instance with nothing granted (no files, no sockets), the memory cap and a deadline.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::Store;

use super::instance::{call_error, guest_error};
use super::policy::Policy;
use super::state::{HostState, arm, new_store};
use super::wasm_engine::Shared;
use super::{PluginError, PluginHost, PluginInfo, builtin};

mod bindings {
    wasmtime::component::bindgen!({
        world: "network-driver",
        path: "plugin-sdk/wit",
        with: {
            "burrow:plugin/types": crate::plugin::bindings::burrow::plugin::types,
            "burrow:plugin/diag": crate::plugin::bindings::burrow::plugin::diag,
        },
    });
}

pub use bindings::burrow::plugin::net_types::{
    Addr, Attach, HostFacts, Link, LinkInfo, Network, Op, Plan, Route, Side, Subnet,
};
#[cfg(test)]
pub use bindings::burrow::plugin::net_types::{BridgeSpec, MacvlanSpec, VethSpec};

const CALL: Duration = Duration::from_secs(5);

/// A network driver ready to instantiate: cheap to clone.
#[derive(Clone)]
pub struct NetworkDriver {
    shared: Arc<Shared>,
    pre: Arc<bindings::NetworkDriverPre<HostState>>,
    info: PluginInfo,
}

/// Whether `name` is a built-in network driver's (no plugin host needed to tell).
pub fn is_builtin_network_driver(name: &str) -> bool {
    builtin::component(&format!("net-{name}")).is_some()
}

impl PluginHost {
    /// Names of the built-in network drivers, e.g. "bridge".
    pub fn builtin_network_drivers(&self) -> Vec<String> {
        builtin::names("net-")
    }

    /// A built-in network driver (`plugins/net-NAME`), compiled or loaded from the cache.
    pub fn network_driver(&self, name: &str) -> Result<NetworkDriver, PluginError> {
        let krate = format!("net-{name}");
        let Some(wasm) = builtin::component(&krate) else {
            return Err(PluginError::UnknownNetworkDriver {
                name: name.into(),
                known: self.builtin_network_drivers().join(", "),
            });
        };
        self.load_network_driver_as(&krate, wasm)
    }

    /// The network driver `name`: the installed plugin whose component is at `installed`,
    /// else the built-in one. Errors name it `name`, whatever it calls itself.
    pub fn network_driver_at(
        &self,
        name: &str,
        installed: Option<&std::path::Path>,
    ) -> Result<NetworkDriver, PluginError> {
        let Some(path) = installed else {
            return self.network_driver(name);
        };
        let wasm = std::fs::read(path).map_err(|source| PluginError::Installed {
            path: path.to_path_buf(),
            source,
        })?;
        let mut driver = self.load_network_driver_as(name, &wasm)?;
        driver.info.name = name.to_string();
        Ok(driver)
    }

    /// Any network driver component (a plugin being installed, tests), labelled by its digest.
    pub fn load_network_driver(&self, wasm: &[u8]) -> Result<NetworkDriver, PluginError> {
        let label = format!("sha256:{}", &hex::encode(Sha256::digest(wasm))[..12]);
        self.load_network_driver_as(&label, wasm)
    }

    fn load_network_driver_as(
        &self,
        label: &str,
        wasm: &[u8],
    ) -> Result<NetworkDriver, PluginError> {
        let component = self.shared.component(label, wasm)?;
        super::check_world(&self.shared.engine, &component, label, "networking")?;
        let pre = self.shared.instantiate_pre(&component, label)?;
        let pre = bindings::NetworkDriverPre::new(pre).map_err(|source| PluginError::Link {
            plugin: label.into(),
            source,
        })?;
        self.shared.start_ticker();
        let info = call(&self.shared, &pre, label, "describe", |b, s| {
            b.burrow_plugin_networking().call_describe(s)
        })?;
        Ok(NetworkDriver {
            shared: self.shared.clone(),
            pre: Arc::new(pre),
            info,
        })
    }
}

impl NetworkDriver {
    /// What `describe()` returned at load.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// A new network with the driver's defaults filled in, or the driver's refusal.
    pub fn create(&self, n: &Network, facts: &HostFacts) -> Result<Network, PluginError> {
        self.call("create", |b, s| {
            b.burrow_plugin_networking().call_create(s, n, facts)
        })?
        .map_err(|e| guest_error(&self.info.name, "create", e))
    }

    /// The plan that connects a container.
    pub fn setup(&self, a: &Attach, facts: &HostFacts) -> Result<Plan, PluginError> {
        self.call("setup", |b, s| {
            b.burrow_plugin_networking().call_setup(s, a, facts)
        })?
        .map_err(|e| guest_error(&self.info.name, "setup", e))
    }

    /// The plan that disconnects it.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn teardown(&self, a: &Attach, facts: &HostFacts) -> Result<Plan, PluginError> {
        self.call("teardown", |b, s| {
            b.burrow_plugin_networking().call_teardown(s, a, facts)
        })?
        .map_err(|e| guest_error(&self.info.name, "teardown", e))
    }

    fn call<R>(
        &self,
        name: &'static str,
        f: impl FnOnce(&bindings::NetworkDriver, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        call(&self.shared, &self.pre, &self.info.name, name, f)
    }
}

/// One call on a fresh instance: drivers keep no state between calls.
fn call<R>(
    shared: &Shared,
    pre: &bindings::NetworkDriverPre<HostState>,
    label: &str,
    name: &'static str,
    f: impl FnOnce(&bindings::NetworkDriver, &mut Store<HostState>) -> wasmtime::Result<R>,
) -> Result<R, PluginError> {
    let mut store = new_store(shared, label, Policy::none(), None)?;
    arm(&mut store, CALL);
    let b = pre
        .instantiate(&mut store)
        .map_err(|e| call_error(label, "instantiate", CALL, e))?;
    arm(&mut store, CALL);
    f(&b, &mut store).map_err(|e| call_error(label, name, CALL, e))
}

impl std::fmt::Debug for NetworkDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkDriver")
            .field("info", &self.info)
            .finish()
    }
}
