//! INTERFACE STUB — to be implemented.
use hypercall_abi::mft::{MftEntry, MftType};

/// A validated manifest: entry index = device handle; entry 0 is the reserved one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest { entries: Vec<MftEntry> }

#[derive(Debug, thiserror::Error)]
pub enum ManifestError { #[error("todo")] Todo }

impl Manifest {
    /// Parses and validates a payload (note padding already removed).
    pub fn parse(_payload: &[u8]) -> Result<Self, ManifestError> { Err(ManifestError::Todo) }
    /// All entries, reserved entry 0 included.
    pub fn entries(&self) -> &[MftEntry] { &self.entries }
    /// Mutable entries (the tender fills in properties and attaches fds on its copy).
    pub fn entries_mut(&mut self) -> &mut [MftEntry] { &mut self.entries }
    /// Index of the entry named `name` with type `kind`.
    pub fn find(&self, name: &str, kind: MftType) -> Option<usize> {
        self.entries.iter().position(|e| e.device_type == kind as u32 && e.name_bytes() == name.as_bytes())
    }
    /// The payload bytes (header + entries) as they go into guest memory.
    pub fn encode(&self) -> Vec<u8> { Vec::new() }
}
