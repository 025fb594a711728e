//! Argon2's memory in a mapping of its own: dropping it hands the pages back to the
//! operating system at once, whatever the allocator would do with a freed 19 MiB
//! block (glibc keeps such blocks in its heaps, see `hasher`).

use argon2::Block;

// Zeroed pages are valid blocks (a block is 128 `u64` words), and a page is aligned
// enough for one.
const _: () = assert!(size_of::<Block>() == 1024 && align_of::<Block>() <= 4096);

/// `len` Argon2 blocks, zeroed, owned like a `Box<[Block]>`.
pub(super) struct Pages {
    #[cfg(unix)]
    ptr: std::ptr::NonNull<Block>,
    #[cfg(unix)]
    len: usize,
    #[cfg(not(unix))]
    blocks: Box<[Block]>,
}

// SAFETY: `Pages` owns its mapping alone, as a `Box<[Block]>` owns its blocks.
#[cfg(unix)]
unsafe impl Send for Pages {}

#[cfg(unix)]
impl Pages {
    /// `len` blocks of fresh anonymous pages (the kernel backs them on first
    /// write); `None` when the system refuses the mapping.
    pub(super) fn new(len: usize) -> Option<Self> {
        let bytes = len.checked_mul(size_of::<Block>()).filter(|&b| b > 0)?;
        // SAFETY: a new private anonymous mapping; no existing memory is touched.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        // Transparent huge pages where the system offers them on request: backing
        // 19 MiB takes ten 2 MiB faults instead of 4,864 small ones, so mapping the
        // memory again after an idle spell costs about 3 ms instead of about 13
        // (measured on this project's 2-core machine). A hint: refused, the small
        // pages serve as well.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        // SAFETY: advice on the mapping just made; it changes no contents.
        unsafe {
            libc::madvise(ptr, bytes, libc::MADV_HUGEPAGE);
        }
        Some(Self {
            ptr: std::ptr::NonNull::new(ptr.cast())?,
            len,
        })
    }

    pub(super) fn blocks(&mut self) -> &mut [Block] {
        // SAFETY: `len` page-aligned, zero-initialised blocks owned by `self` and
        // borrowed mutably through it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

#[cfg(unix)]
impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: the mapping `new` made, unmapped once; no borrow outlives `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len * size_of::<Block>());
        }
    }
}

#[cfg(not(unix))]
impl Pages {
    /// Elsewhere the allocator's memory: freed on drop, returned as it sees fit.
    pub(super) fn new(len: usize) -> Option<Self> {
        (len > 0).then(|| Self {
            blocks: vec![Block::default(); len].into_boxed_slice(),
        })
    }

    pub(super) fn blocks(&mut self) -> &mut [Block] {
        &mut self.blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_zeroed_blocks_that_can_be_written() {
        let mut pages = Pages::new(3).expect("a mapping");
        let blocks = pages.blocks();
        assert_eq!(blocks.len(), 3);
        assert!(blocks.iter().all(|b| b.as_ref().iter().all(|&w| w == 0)));
        blocks[2].as_mut()[127] = 7;
        assert_eq!(pages.blocks()[2].as_ref()[127], 7);
        assert!(Pages::new(0).is_none());
    }
}
