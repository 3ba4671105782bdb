//! Function multiversioning for the memory-bound loops (pooling, masks): the wheel targets baseline
//! x86-64 (SSE2), so without this every non-GEMM loop runs 4 lanes wide on a 16-lane CPU.
//!
//! `multiversion!` compiles one body three times: for AVX-512, for AVX2 + FMA, and for the baseline,
//! and calls the best one the CPU supports (`RCONV_KERNELS=portable` forces the baseline, so tests
//! cover it). The clones compute the same thing: these loops are elementwise compares, selects and
//! adds, never reassociated, so every path gives identical bits.

/// Which clone runs: 2 = AVX-512, 1 = AVX2 + FMA, 0 = baseline (decided once per process).
#[inline]
pub fn level() -> u8 {
    static LEVEL: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if !super::gemm::portable() {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl") && is_x86_feature_detected!("avx512dq") {
                return 2;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return 1;
            }
        }
        0
    })
}

/// `multiversion! { pub(crate) fn name(args) { body } }`: `name` runs `body` compiled for the best
/// instruction set the CPU has. Everything the body calls should be `#[inline]` so it is compiled
/// into each clone.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn generic($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? { generic($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? { generic($($arg),*) }
                // Safety: `level` checked that the CPU has these features.
                match $crate::ops::simd::level() {
                    2 => return unsafe { avx512($($arg),*) },
                    1 => return unsafe { avx2($($arg),*) },
                    _ => {}
                }
            }
            generic($($arg),*)
        }
    };
}
pub(crate) use multiversion;
