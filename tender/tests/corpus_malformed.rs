//! The committed corpus of malformed inputs (tender/tests/corpus/): each ELF is refused
//! by the real binary with status 1 and a message naming the file and the reason; each
//! command line is refused by the parser with its reason.
//!
//! The ELF files are made by `recipes()` below from the hand-written builder; after
//! changing a recipe, regenerate with `TENDER_REGEN_CORPUS=1 cargo test -p tender --test
//! corpus_malformed` and commit the files (a test fails if they drift).

mod common;
#[path = "fixtures/elf_builder.rs"]
#[allow(dead_code)]
mod elf_builder;

use std::ffi::OsString;
use std::path::PathBuf;

use elf_builder::*;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/elf")
}

/// (file name, bytes, fragment the error must contain)
fn recipes() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let valid = Guest::spt();
    let with = |f: &dyn Fn(&mut Guest)| {
        let mut g = valid.clone();
        f(&mut g);
        g.build()
    };
    vec![
        ("truncated_header.elf", valid.build()[..40].to_vec(), "invalid executable"),
        ("truncated_phdrs.elf", valid.build()[..64 + 56 * 2].to_vec(), "invalid executable"),
        ("elf32.elf", with(&|g| g.class = 1), "invalid executable"),
        ("big_endian.elf", with(&|g| g.data = 2), "invalid executable"),
        ("wrong_machine.elf", with(&|g| g.machine = 183), "invalid executable"),
        ("pie.elf", with(&|g| g.e_type = 3), "PIE"),
        ("no_phdrs.elf", with(&|g| g.phnum = Some(0)), "invalid executable"),
        ("entry_below_1mib.elf", with(&|g| g.entry = 0x1000), "invalid executable"),
        ("no_abi_note.elf", with(&|g| g.phdrs[ph::NOTE_ABI].p_type = PT_NULL), "no Solo5 ABI information"),
        ("abi_virtio.elf", with(&|g| g.set_note(ph::NOTE_ABI, abi_note(3, 2))), "solo5-virtio target"),
        (
            "abi_version_3.elf",
            with(&|g| g.set_note(ph::NOTE_ABI, abi_note(TARGET_SPT, 3))),
            "unsupported ABI version 3",
        ),
        ("no_manifest.elf", with(&|g| g.phdrs[ph::NOTE_MFT].p_type = PT_NULL), "no Solo5 manifest"),
        (
            "buggyelf_mft_descsz_1.elf",
            with(&|g| g.set_note(ph::NOTE_MFT, note_bytes(6, b"Solo5\0", 1, NT_MFT1, &[0; 4]))),
            "note does not fall within valid size",
        ),
        (
            "mft_descsz_huge.elf",
            with(&|g| g.set_note(ph::NOTE_MFT, note_bytes(6, b"Solo5\0", 0xffff_ffff, NT_MFT1, &[0; 16]))),
            "note does not fall within valid size",
        ),
        (
            "mft_version_2.elf",
            with(&|g| g.set_note(ph::NOTE_MFT, mft_note(&mft_payload_raw(2, 1, &[reserved_entry()])))),
            "Solo5 manifest is invalid",
        ),
        (
            "mft_attached.elf",
            with(&|g| {
                let mut e = mft_entry(b"storage", MFT_BLOCK_BASIC);
                e[96] = 1;
                g.set_manifest(&[reserved_entry(), e]);
            }),
            "Solo5 manifest is invalid",
        ),
        (
            "mft_65_entries.elf",
            with(&|g| {
                let mut entries = vec![reserved_entry()];
                entries.extend((0..64).map(|i| mft_entry(format!("d{i}").as_bytes(), MFT_BLOCK_BASIC)));
                g.set_manifest(&entries);
            }),
            "note does not fall within valid size",
        ),
        (
            "wx_segment.elf",
            with(&|g| g.phdrs[ph::DATA].flags = PF_R | PF_W | PF_X),
            "requests WRITE and EXEC permissions",
        ),
        ("overlapping_segments.elf", with(&|g| g.phdrs[ph::DATA].vaddr = TEXT_VADDR + 0x1000), "phdr[2]"),
        ("huge_memsz.elf", with(&|g| g.phdrs[ph::DATA].memsz = u64::MAX - 0x100), "phdr[2]"),
        ("segment_past_eof.elf", with(&|g| g.phdrs[ph::DATA].offset = 0x10_0000), "past end of file"),
        ("entry_in_data.elf", with(&|g| g.entry = DATA_VADDR), "entry point"),
    ]
}

#[test]
fn corpus_files_match_their_recipes() {
    let regen = std::env::var_os("TENDER_REGEN_CORPUS").is_some();
    for (name, bytes, _) in recipes() {
        let path = corpus_dir().join(name);
        if regen {
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed =
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (regenerate the corpus)", path.display()));
        assert!(committed == bytes, "{name} differs from its recipe: regenerate with TENDER_REGEN_CORPUS=1");
    }
    let files = std::fs::read_dir(corpus_dir()).unwrap().count();
    assert_eq!(files, recipes().len(), "corpus/elf has files without a recipe");
}

#[test]
fn every_corpus_elf_is_refused_by_the_binary_naming_file_and_reason() {
    for (name, _, fragment) in recipes() {
        let path = corpus_dir().join(name);
        for args in [vec![path.to_str().unwrap()], vec!["inspect", path.to_str().unwrap()]] {
            let run = common::run_tender(&args);
            run.expect_error(fragment);
            assert!(run.stderr().starts_with(&format!("tender: {}: ", path.display())), "{name}: {}", run.stderr());
            assert!(!run.stderr().contains("panicked"), "{name}: {}", run.stderr());
        }
    }
}

#[test]
fn corpus_command_lines_are_refused_with_their_reason() {
    let text = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/cli.txt")).unwrap();
    let mut cases = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let (args, fragment) = line.split_once("=>").unwrap_or_else(|| panic!("bad corpus line {line:?}"));
        let args: Vec<OsString> = args.split_whitespace().map(OsString::from).collect();
        match tender::cli::parse(args.clone()) {
            Ok(cmd) => panic!("{args:?} was accepted: {cmd:?}"),
            Err(e) => assert!(e.to_string().contains(fragment.trim()), "{args:?}: {e} lacks {fragment:?}"),
        }
        cases += 1;
    }
    assert!(cases >= 10, "cli corpus has only {cases} cases");
}
