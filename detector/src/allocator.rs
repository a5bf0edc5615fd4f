//! Which malloc this process runs on: tcmalloc when the `tcmalloc` feature (default) links it
//! (see build.rs), else glibc. Every binary that runs the model links it through this crate
//! (`argus`, `argus-detector`, the tests and benchmarks): libtorch's CPU inference runs faster
//! on it. Calling [`name`] at start is also what keeps the linker from dropping the library.

pub fn name() -> String {
    #[cfg(feature = "tcmalloc")]
    {
        extern "C" {
            fn tc_version(
                major: *mut libc::c_int,
                minor: *mut libc::c_int,
                patch: *mut *const libc::c_char,
            ) -> *const libc::c_char;
        }
        // SAFETY: null out-pointers are allowed; the result is a static C string.
        let version = unsafe {
            std::ffi::CStr::from_ptr(tc_version(
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            ))
        };
        version.to_string_lossy().into_owned()
    }
    #[cfg(not(feature = "tcmalloc"))]
    "glibc".to_string()
}
