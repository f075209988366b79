//! heap: gives the memory freed after a large pass back to the kernel.
//!
//! A plan change over many pods (a cold start, an edit of a Route over a thousand pods)
//! allocates and frees tens of MiB in small pieces: each re-merged pod's routes, the pod
//! side's per-pod writes. glibc keeps the freed pieces inside its heap, and returns only
//! the free space at the top of it, so the RSS stays where the pass left it: measured on a
//! 2,000-pod node, 77.8 MiB after ten such edits, of which 39 MiB in use; `malloc_trim`
//! took it to 61.9 MiB (docs/benchmarks.md "Memory at 2,000 pods").
//!
//! The binary allocates with mimalloc (src/main.rs), which returns freed pages to the kernel
//! on its own once they empty (at once: [`purge_at_once`]); this still matters for glibc's
//! heap (what C code and the library's users allocate there).
//!
//! Must not: run on every small pass (it walks the allocator's free lists, holding its
//! lock), or do anything but ask the allocator.

/// mimalloc's `purge_delay` option (`mi_option_purge_delay`: 15 in the 3.x header; the
/// constants `libmimalloc-sys` declares follow an older numbering). The test below checks it
/// is the option whose default is 1,000 ms, the purge delay's.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc return pages it no longer uses to the kernel at once instead of a second
/// later. A second later may be never: the delay is checked when some thread next allocates
/// or frees, and after a large pass the central writer goes quiet. At 50,000 pods this took
/// the steady RSS from 251-254 to 236-237 MiB and the peak from 309-324 to 276-278 MiB, with
/// no figure slower (docs/benchmarks.md "Cluster scale, seventh round").
pub fn purge_at_once() {
    // SAFETY: mi_option_set only stores an integer in mimalloc's option table (atomic; any
    // thread, any time); it takes no pointer.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

/// Returns the free pages of the heap to the kernel (glibc's `malloc_trim(0)`); a no-op
/// with another C library.
pub fn give_back_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and is thread-safe (it takes each arena's lock);
    // it only releases pages no allocation uses. No safe wrapper exists in nix or std.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[allow(unsafe_code)]
    fn the_purge_delay_option_is_the_one_read_from_this_mimalloc_version() {
        // SAFETY: plain getters and a setter of mimalloc's option table. Only this test sets
        // options in this test binary (which does not allocate with mimalloc).
        let (version, default, delay) = unsafe {
            let default = libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY);
            super::purge_at_once();
            (
                libmimalloc_sys::mi_version(),
                default,
                libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY),
            )
        };
        // Another version may number its options otherwise: read its mimalloc.h again.
        assert_eq!(
            version, 30302,
            "check mi_option_purge_delay in this mimalloc.h"
        );
        // The purge delay's default (options.c); no option near it has the same one.
        assert_eq!(
            default,
            1000,
            "option {} is not the purge delay",
            super::MI_OPTION_PURGE_DELAY
        );
        assert_eq!(delay, 0);
    }

    #[test]
    fn giving_back_keeps_live_allocations_intact() {
        let keep: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 4096]).collect();
        let freed: Vec<Vec<u8>> = (0..1024).map(|_| vec![0xaa; 4096]).collect();
        drop(freed);
        super::give_back_free();
        assert!(
            keep.iter()
                .enumerate()
                .all(|(i, v)| v.iter().all(|&b| usize::from(b) == i))
        );
    }
}
