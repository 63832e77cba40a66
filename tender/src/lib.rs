//! The tender: loads a Solo5 (v0.12) unikernel and runs it.
//!
//! * [`spec`]: what one run is ([`spec::RunSpec`]), the seam every front end builds.
//! * [`cli`]: the solo5-spt compatible command line (parsing only) → a `RunSpec`.
//! * [`loader`]: ELF, notes and manifest validation (pure, no syscalls).
//! * [`guest_file`]: the guest file's bytes (mapped, not copied).
//! * [`devices`]: attaching block files and taps to the manifest.
//! * [`spt`]: the seccomp backend (the guest runs in this process).
//! * [`hvt`]: the KVM backend (the guest runs in a virtual machine).
//! * [`inspect`]: `tender inspect`.

pub mod cli;
pub mod devices;
pub mod guest_file;
pub mod hvt;
pub mod inspect;
pub mod loader;
pub mod spec;
pub mod spt;
pub mod yield_set;

use std::path::PathBuf;

use hypercall_abi::elf::AbiTarget;

/// Everything that can stop a run before the guest starts. The binary maps every
/// variant to exit status 1, as Solo5's tenders do.
#[derive(Debug, thiserror::Error)]
pub enum TenderError {
    /// Bad command line.
    #[error(transparent)]
    Cli(#[from] cli::CliError),
    /// A run spec built in code breaks a rule.
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    /// The guest file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The guest path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The guest file is not a valid Solo5 guest.
    #[error("{path}: {source}")]
    Load {
        /// The guest path.
        path: PathBuf,
        /// Why.
        source: loader::LoadError,
    },
    /// The guest targets a backend this build cannot run.
    #[error("{path}: executable is for the solo5-{target} target, which this tender does not run (it runs solo5-spt and solo5-hvt guests)", target = .target.name())]
    UnsupportedTarget {
        /// The guest path.
        path: PathBuf,
        /// Its target.
        target: AbiTarget,
    },
    /// Device attach failed.
    #[error(transparent)]
    Device(#[from] devices::DeviceError),
    /// spt setup failed.
    #[error(transparent)]
    Spt(#[from] spt::SptError),
    /// hvt setup failed.
    #[error(transparent)]
    Hvt(#[from] hvt::HvtError),
}

impl TenderError {
    /// Whether the usage text helps (Solo5 prints it after option errors).
    pub fn wants_usage(&self) -> bool {
        matches!(self, Self::Cli(_))
    }
}

/// Reads and validates a guest image.
pub fn load_guest(
    path: &std::path::Path,
    mem_size: u64,
) -> Result<(guest_file::GuestFile, loader::GuestImage), TenderError> {
    let bytes =
        guest_file::GuestFile::open(path).map_err(|source| TenderError::Read { path: path.to_owned(), source })?;
    let image = loader::GuestImage::parse(&bytes, mem_size)
        .map_err(|source| TenderError::Load { path: path.to_owned(), source })?;
    Ok((bytes, image))
}

/// `tender --audit`: the exact filter a run of `opts` would install, as text.
pub fn audit(opts: &spec::RunSpec) -> Result<String, TenderError> {
    opts.validate()?;
    let (elf, image) = load_guest(&opts.guest, opts.mem_bytes)?;
    match image.target {
        AbiTarget::Spt => {
            let devices = devices::attach(&image.manifest, opts)?;
            let filter = spt::SptFilter::new(&devices)?;
            Ok(format!(
                "# {guest}: solo5-spt guest, seccomp filter installed just before the jump\n\
                 # {len} BPF instructions; architecture x86_64 only; anything not below kills the process (SIGSYS)\n\
                 {rules}",
                guest = opts.guest.display(),
                len = filter.bpf.len(),
                rules = filter.resolved,
            ))
        }
        AbiTarget::Hvt => {
            let (image, mem_size) = hvt_image(opts, &elf, image)?;
            let devices = devices::attach(&image.manifest, opts)?;
            let config = hvt::HvtConfig { image: &image, elf: &elf, mem_size, cmdline: &opts.cmdline };
            let prepared = hvt::Prepared::new(&config, &devices)?;
            Ok(format!(
                "# {guest}: solo5-hvt guest, seccomp filter the tender installs on itself before its vCPU loop\n\
                 # {len} BPF instructions; architecture x86_64 only; anything not below kills the process (SIGSYS)\n\
                 {rules}",
                guest = opts.guest.display(),
                len = prepared.bpf.len(),
                rules = prepared.filter,
            ))
        }
        target => Err(TenderError::UnsupportedTarget { path: opts.guest.clone(), target }),
    }
}

/// An hvt guest's image validated for the memory it will get: `--mem` rounded
/// down to 2 MiB (with a warning, as solo5-hvt), at most 4 GiB.
fn hvt_image(
    opts: &spec::RunSpec,
    elf: &[u8],
    image: loader::GuestImage,
) -> Result<(loader::GuestImage, u64), TenderError> {
    if opts.x_exec_heap {
        return Err(hvt::HvtError::ExecHeap.into());
    }
    let (mem_size, rounded) = hvt::mem_size(opts.mem_bytes)?;
    if !rounded {
        return Ok((image, mem_size));
    }
    eprintln!("tender: warning: hvt guest memory is a multiple of 2 MiB: adjusting memory to {mem_size} bytes");
    // The image was checked against --mem; check it again against what the guest gets.
    let image = loader::GuestImage::parse(elf, mem_size)
        .map_err(|source| TenderError::Load { path: opts.guest.clone(), source })?;
    Ok((image, mem_size))
}

/// Runs the guest `opts` describes. Returns only on error. Descriptors the spec hands
/// over (taps a front end opened) are closed before the guest runs; the devices keep
/// their own.
pub fn run(mut opts: spec::RunSpec) -> Result<std::convert::Infallible, TenderError> {
    opts.validate()?;
    let (elf, image) = load_guest(&opts.guest, opts.mem_bytes)?;
    let opts = &mut opts;
    match image.target {
        AbiTarget::Spt => {
            let devices = devices::attach(&image.manifest, opts)?;
            drop(std::mem::take(&mut opts.nets));
            let config = spt::SptConfig {
                image: &image,
                elf: &elf,
                mem_size: opts.mem_bytes,
                cmdline: &opts.cmdline,
                exec_heap: opts.x_exec_heap,
            };
            Ok(spt::run(config, devices)?)
        }
        AbiTarget::Hvt => {
            let (image, mem_size) = hvt_image(opts, &elf, image)?;
            let devices = devices::attach(&image.manifest, opts)?;
            drop(std::mem::take(&mut opts.nets));
            let config = hvt::HvtConfig { image: &image, elf: &elf, mem_size, cmdline: &opts.cmdline };
            Ok(hvt::run(&config, devices)?)
        }
        target => Err(TenderError::UnsupportedTarget { path: opts.guest.clone(), target }),
    }
}
