//! burrow: rootless, daemonless containers.
#![deny(unsafe_code)]

mod build;
mod cli;
mod engine;
mod errors;
mod fsutil;
mod image;
mod monitor;
mod network;
mod plugin;
mod runtime;
mod state;
mod storage;
mod timing;

fn main() {
    let code = cli::main();
    timing::mark("end");
    std::process::exit(code);
}
