//! `wasi-adapter OUT`: writes the WASI preview 1 reactor adapter to OUT.

fn main() {
    let out = std::env::args().nth(1).expect("usage: wasi-adapter OUT");
    std::fs::write(
        &out,
        wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
    )
    .expect("writing the adapter");
}
