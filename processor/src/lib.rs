//! The processor role of Argus: probes an uploaded video, plans the frame ranges (chunks) that
//! detectors decode on their own, and merges chunk results into the final video result.
//!
//! It must never link libtorch: the api + processor image stays small.
