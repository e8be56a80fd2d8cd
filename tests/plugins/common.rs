// Shared by the hostile plugins (included with `include!`): a `describe` that asks for
// `needs`, and the SDK's `NoReader` as the reader nobody uses.

fn info(name: &str, needs: Capabilities) -> PluginInfo {
    PluginInfo { name: name.into(), version: "0.1.0".into(), description: "hostile test plugin".into(), needs }
}

use burrow_plugin_sdk::log::NoReader;
