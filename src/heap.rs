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
//! on its own shortly after they empty; this still matters for glibc's heap (what C code and
//! the library's users allocate there).
//!
//! Must not: run on every small pass (it walks the allocator's free lists, holding its
//! lock), or do anything but ask the allocator.

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
