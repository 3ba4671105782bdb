//! The kernels' floating-point mode: subnormal floats flushed to zero (x86 MXCSR FTZ + DAZ), as
//! TensorFlow's CPU threads compute. A subnormal operand costs an Intel core a ~100-cycle microcode assist
//! per operation, and saturated sigmoids make whole gradients subnormal (a 100×100 convnet's backward ran
//! 2.2× slower for several steps on a Xeon). Every kernel thread uses the same mode, so results still do
//! not depend on the thread count. `RCONV_FLUSH_DENORMALS=0` keeps IEEE subnormals.

use std::sync::OnceLock;

/// The kernels' floating-point mode (subnormals flushed) unless RCONV_FLUSH_DENORMALS=0 (read once).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn flush_denormals() -> bool {
    static FLUSH: OnceLock<bool> = OnceLock::new();
    *FLUSH.get_or_init(|| std::env::var("RCONV_FLUSH_DENORMALS").map_or(true, |v| v.trim() != "0"))
}

/// The x86 control/status register (MXCSR) bits of flush-to-zero (15) and denormals-are-zero (6).
#[cfg(target_arch = "x86_64")]
const FTZ_DAZ: u32 = 0x8040;

#[cfg(target_arch = "x86_64")]
fn mxcsr() -> u32 {
    let mut value = 0u32;
    // Safety: stmxcsr writes 4 bytes to the given address, a live local.
    unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut value, options(nostack, preserves_flags)) };
    value
}

#[cfg(target_arch = "x86_64")]
fn set_mxcsr(value: u32) {
    // Safety: ldmxcsr reads 4 bytes from a live local; `value` is a valid MXCSR (read back, two mode bits changed).
    unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &value, options(nostack, readonly, preserves_flags)) };
}

/// While alive, the current thread computes in the kernels' floating-point mode; dropping it restores the
/// thread's previous mode (the calling thread is Python's, whose NumPy keeps IEEE subnormals).
pub struct KernelFpMode(#[allow(dead_code)] Option<u32>);

impl KernelFpMode {
    pub fn enter() -> Self {
        #[cfg(target_arch = "x86_64")]
        if flush_denormals() {
            let old = mxcsr();
            set_mxcsr(old | FTZ_DAZ);
            return KernelFpMode(Some(old));
        }
        KernelFpMode(None)
    }
}

impl Drop for KernelFpMode {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        if let Some(old) = self.0 {
            set_mxcsr(old);
        }
    }
}
