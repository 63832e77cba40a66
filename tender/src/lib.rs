//! The tender: loads a Solo5 (v0.12) unikernel and runs it.
//!
//! * [`spec`]: what one run is ([`spec::RunSpec`]), the seam every front end builds.
//! * [`boot`]: what both backends do alike to start a guest.
//! * [`cli`]: the solo5-spt compatible command line (parsing only) → a `RunSpec`.
//! * [`loader`]: ELF, notes and manifest validation (pure, no syscalls).
//! * [`guest_file`]: the guest file's bytes (read, not mapped).
//! * [`devices`]: attaching block files and taps to the manifest.
//! * [`spt`]: the seccomp backend (the guest runs in this process).
//! * [`hvt`]: the KVM backend (the guest runs in a virtual machine).
//! * [`inspect`]: `tender inspect`.

pub mod boot;
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
    /// `--dumpcore` with an spt guest.
    #[error("--dumpcore is an hvt option (solo5-hvt-debug's), and {path} is an spt guest: drop --dumpcore, or run the guest built for hvt")]
    DumpcoreOnSpt {
        /// The guest path.
        path: PathBuf,
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
    let read = |source| TenderError::Read { path: path.to_owned(), source };
    let mut file = guest_file::GuestFile::open(path).map_err(read)?;
    let parsed = match loader::GuestImage::parse_in(file.head(), file.len(), mem_size) {
        // Headers or notes beyond the head: read it all and parse again.
        Err(e) if e.is_truncation() && !file.is_whole() => {
            file.read_whole().map_err(read)?;
            loader::GuestImage::parse_in(file.head(), file.len(), mem_size)
        }
        parsed => parsed,
    };
    let image = parsed.map_err(|source| TenderError::Load { path: path.to_owned(), source })?;
    Ok((file, image))
}

/// A guest loaded for its backend: the file, the image validated for the memory the
/// backend gives it, and that memory size. The one place the ABI note picks the
/// backend, for `run` and `audit` alike.
struct Loaded {
    elf: guest_file::GuestFile,
    image: loader::GuestImage,
    mem_size: u64,
}

impl Loaded {
    fn new(opts: &spec::RunSpec) -> Result<Self, TenderError> {
        opts.validate()?;
        let (elf, image) = load_guest(&opts.guest, opts.mem_bytes)?;
        let mem_size = match image.target {
            AbiTarget::Spt if opts.dumpcore.is_some() => {
                return Err(TenderError::DumpcoreOnSpt { path: opts.guest.clone() })
            }
            AbiTarget::Spt => opts.mem_bytes,
            AbiTarget::Hvt => hvt_mem_size(opts, &image)?,
            target => return Err(TenderError::UnsupportedTarget { path: opts.guest.clone(), target }),
        };
        Ok(Self { elf, image, mem_size })
    }

    fn config<'a>(image: &'a loader::GuestImage, mem_size: u64, opts: &'a spec::RunSpec) -> boot::GuestConfig<'a> {
        boot::GuestConfig {
            image,
            mem_size,
            cmdline: &opts.cmdline,
            exec_heap: opts.x_exec_heap,
            dumpcore: opts.dumpcore.as_deref(),
            title: opts.title.as_deref(),
        }
    }
}

/// An hvt guest's memory: `--mem` rounded down to 2 MiB (with a warning, as
/// solo5-hvt), at most 4 GiB; the image is checked again against what it gets.
fn hvt_mem_size(opts: &spec::RunSpec, image: &loader::GuestImage) -> Result<u64, TenderError> {
    if opts.x_exec_heap {
        return Err(hvt::HvtError::ExecHeap.into());
    }
    let (mem_size, rounded) = hvt::mem_size(opts.mem_bytes)?;
    if rounded {
        eprintln!("tender: warning: hvt guest memory is a multiple of 2 MiB: adjusting memory to {mem_size} bytes");
        image.check_memory(mem_size).map_err(|source| TenderError::Load { path: opts.guest.clone(), source })?;
    }
    Ok(mem_size)
}

/// `tender --audit`: the exact filter a run of `opts` would install, as text.
pub fn audit(opts: &spec::RunSpec) -> Result<String, TenderError> {
    let loaded = Loaded::new(opts)?;
    let devices = devices::attach(&loaded.image.manifest, opts)?;
    let (backend, installed, len, rules) = match loaded.image.target {
        AbiTarget::Hvt => {
            let config = Loaded::config(&loaded.image, loaded.mem_size, opts);
            let prepared = hvt::Prepared::new(&config, &loaded.elf, &devices)?;
            ("hvt", "the tender installs on itself before its vCPU loop", prepared.bpf.len(), prepared.filter)
        }
        _ => {
            let filter = spt::SptFilter::new(&devices)?;
            ("spt", "installed just before the jump", filter.bpf.len(), filter.resolved)
        }
    };
    Ok(format!(
        "# {guest}: solo5-{backend} guest, seccomp filter {installed}\n\
         # {len} BPF instructions; architecture x86_64 only; anything not below kills the process (SIGSYS)\n\
         {rules}",
        guest = opts.guest.display(),
    ))
}

/// Runs the guest `opts` describes. Returns only on error. Descriptors the spec hands
/// over (taps a front end opened) are closed before the guest runs; the devices keep
/// their own.
pub fn run(mut opts: spec::RunSpec) -> Result<std::convert::Infallible, TenderError> {
    let Loaded { elf, image, mem_size } = Loaded::new(&opts)?;
    let devices = devices::attach(&image.manifest, &opts)?;
    drop(std::mem::take(&mut opts.nets));
    let config = Loaded::config(&image, mem_size, &opts);
    match image.target {
        AbiTarget::Hvt => Ok(hvt::run(&config, elf, devices)?),
        _ => Ok(spt::run(config, elf, devices)?),
    }
}
