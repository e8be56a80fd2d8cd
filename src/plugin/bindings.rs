//! Host-side bindings of the `log-driver` world (plugin-sdk/wit is the single source of the
//! ABI). Host resources (`endpoints.conn`) map to [`super::endpoints::Conn`].

wasmtime::component::bindgen!({
    world: "log-driver",
    path: "plugin-sdk/wit",
    with: {
        "burrow:plugin/endpoints.conn": super::endpoints::Conn,
    },
});
