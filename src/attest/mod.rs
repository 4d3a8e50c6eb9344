//! What ocibuild attaches to an image besides the image: statements about it, made from what
//! the build knows exactly. `provenance`: the in-toto / SLSA provenance statement.
//! Pure: no I/O. Imports `digest`, `platform`, `spec`.

pub mod provenance;
