//! The tender: loads a Solo5 unikernel and runs it (spt: seccomp; hvt: KVM).
pub mod loader;
