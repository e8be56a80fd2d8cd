//! The pure front half of `burrow build`: the Dockerfile parser (a typed tree of stages and
//! instructions), variable expansion as BuildKit's shell lexer does it, and `.dockerignore`
//! matching. Nothing here touches the file system or the engine.
// Nothing calls these modules yet: allowed until the build executor lands.
#![allow(dead_code)]

pub mod expand;
pub mod ignore;
pub mod parser;
pub mod shell;
