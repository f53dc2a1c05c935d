//! The Rust side of the one plugin contract, generated from `plugins/wit` (world `scenario`):
//! the host's imports (`valkey` and `clock.sleep` async) and the guest's exports. Both the
//! loader (`mod.rs`) and what a plugin can call (`host.rs`) use these types.

wasmtime::component::bindgen!({
    path: "../plugins/wit",
    world: "scenario",
    imports: {
        "valkey-chaos:plugin/valkey": async,
        "valkey-chaos:plugin/clock.sleep": async,
    },
    exports: { default: async },
});
