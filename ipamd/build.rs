//! Link-time choices for the ipamd binary.

fn main() {
    // Relative relocations packed (DT_RELR): the loader reads a few KiB at each start instead
    // of the 800 KiB of `.rela.dyn` a position-independent ipamd otherwise carries, and those
    // pages stop counting in its resident memory. It needs glibc 2.36 at run time, which the
    // image ships with ipamd; the plugin runs on the node's own libc and never gets it.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu")
    {
        println!("cargo:rustc-link-arg-bin=ipamd=-Wl,-z,pack-relative-relocs");
    }
}
