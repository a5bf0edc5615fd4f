//! The REST API of Argus (actix-web, JWT, OpenAPI + Swagger UI): uploads videos to storage and
//! enqueues `process_video`.
//!
//! It must never link libtorch or decode video: the api + processor image stays small.
