//! `GuestImage::parse` against hand-built ELF images: one valid guest, then one broken
//! field per test, each checked for the error kind and for a message naming the reason.

#[path = "fixtures/elf_builder.rs"]
#[allow(dead_code)]
mod elf_builder;

use elf_builder::*;
use hypercall_abi::elf::AbiTarget;
use hypercall_abi::mft::MftType;
use tender::loader::manifest::name;
use tender::loader::{
    GuestImage, LoadError, ManifestError, NoteError, NoteKind, NoteSizeError, Segment, SegmentError, SegmentPerms,
};

fn parse(g: &Guest) -> Result<GuestImage, LoadError> {
    GuestImage::parse(&g.build(), MEM)
}

fn parse_err(g: &Guest) -> LoadError {
    match parse(g) {
        Ok(img) => panic!("expected an error, parsed {img:?}"),
        Err(e) => e,
    }
}

/// Asserts the error's message contains each of `parts`.
fn assert_message(err: &LoadError, parts: &[&str]) {
    let msg = err.to_string();
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} does not contain {p:?}");
    }
}

fn segment_err(g: &Guest) -> (usize, SegmentError) {
    match parse_err(g) {
        LoadError::Segment { phdr, reason } => (phdr, reason),
        other => panic!("expected a segment error, got {other:?}"),
    }
}

fn manifest_err(g: &Guest) -> ManifestError {
    match parse_err(g) {
        LoadError::Manifest(e) => {
            assert!(e.to_string().starts_with("Solo5 manifest is invalid: "), "{e}");
            e
        }
        other => panic!("expected a manifest error, got {other:?}"),
    }
}

// ---- the valid guest ----

#[test]
fn valid_minimal_spt_image_parses() {
    let g = Guest::spt();
    let bytes = g.build();
    let img = GuestImage::parse(&bytes, MEM).unwrap();
    assert_eq!(img.target, AbiTarget::Spt);
    assert_eq!(img.abi_version, 2);
    assert_eq!(img.entry, ENTRY);
    assert_eq!(
        img.segments,
        [
            Segment {
                phdr_index: ph::TEXT,
                vaddr: TEXT_VADDR,
                file_offset: TEXT_OFFSET,
                filesz: TEXT_SIZE,
                memsz: TEXT_SIZE,
                start: TEXT_VADDR,
                end: TEXT_VADDR + TEXT_SIZE,
                perms: SegmentPerms { read: true, write: false, exec: true },
            },
            Segment {
                phdr_index: ph::DATA,
                vaddr: DATA_VADDR,
                file_offset: DATA_OFFSET,
                filesz: DATA_SIZE,
                memsz: DATA_SIZE,
                start: DATA_VADDR,
                end: DATA_VADDR + 0x1000,
                perms: SegmentPerms { read: true, write: true, exec: false },
            },
        ]
    );
    // The filesz-0 BSS at 0x103000 does not count.
    assert_eq!(img.kernel_end, KERNEL_END);
    assert_eq!(img.segment_bytes(&bytes, &img.segments[1])[..7], *b"RUCCESS");
    let entries = img.manifest.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].device_type, MftType::ReservedFirst as u32);
    assert_eq!(img.manifest.devices().count(), 0);
    // What goes into guest memory is the payload as it was in the note.
    assert_eq!(img.manifest.encode(), mft_payload(&[reserved_entry()]));
}

#[test]
fn valid_hvt_image_reports_its_target() {
    assert_eq!(parse(&Guest::hvt()).unwrap().target, AbiTarget::Hvt);
}

#[test]
fn manifest_devices_are_decoded_in_handle_order() {
    let mut g = Guest::spt();
    g.set_manifest(&[reserved_entry(), mft_entry(b"storage", MFT_BLOCK_BASIC), mft_entry(b"service0", MFT_NET_BASIC)]);
    let img = parse(&g).unwrap();
    let devices: Vec<_> = img.manifest.devices().map(|(h, e)| (h, name(e).to_string(), e.device_type)).collect();
    assert_eq!(devices, [(1, "storage".into(), 1), (2, "service0".into(), 2)]);
    assert_eq!(img.manifest.find("service0", MftType::NetBasic), Some(2));
}

#[test]
fn sixty_three_devices_fit_in_the_largest_note() {
    let mut entries = vec![reserved_entry()];
    let names: Vec<String> = (0..63).map(|i| format!("storage{i}")).collect();
    entries.extend(names.iter().map(|n| mft_entry(n.as_bytes(), MFT_BLOCK_BASIC)));
    let mut g = Guest::spt();
    g.set_manifest(&entries);
    assert_eq!(g.phdrs[ph::NOTE_MFT].filesz, 20 + 6668);
    assert_eq!(parse(&g).unwrap().manifest.devices().count(), 63);
}

#[test]
fn zero_filesz_load_at_vaddr_0_is_skipped() {
    let g = Guest::spt();
    assert_eq!((g.phdrs[ph::EMPTY].vaddr, g.phdrs[ph::EMPTY].filesz), (0, 0));
    let img = parse(&g).unwrap();
    assert!(img.segments.iter().all(|s| s.phdr_index != ph::EMPTY && s.phdr_index != ph::BSS));
    // With one byte of file data it is considered, and rejected for its address.
    let mut g = Guest::spt();
    g.phdrs[ph::EMPTY].filesz = 1;
    g.phdrs[ph::EMPTY].memsz = 1;
    assert_eq!(segment_err(&g), (ph::EMPTY, SegmentError::VaddrBelowMin { vaddr: 0 }));
}

#[test]
fn section_headers_are_never_read() {
    let mut g = Guest::spt();
    g.shoff = u64::MAX;
    g.shnum = 0xffff;
    parse(&g).unwrap();
}

#[test]
fn memory_just_large_enough_and_one_byte_short() {
    let bytes = Guest::spt().build();
    GuestImage::parse(&bytes, KERNEL_END).unwrap();
    let err = GuestImage::parse(&bytes, KERNEL_END - 1).unwrap_err();
    assert_eq!(
        err,
        LoadError::Segment {
            phdr: ph::DATA,
            reason: SegmentError::EndBeyondMemory { end: KERNEL_END, mem_size: KERNEL_END - 1 }
        }
    );
    assert_message(&err, &["phdr[2]", "0x103000", "try a larger --mem"]);
}

// ---- ELF header ----

#[test]
fn truncated_files() {
    let bytes = Guest::spt().build();
    let cut = |len: usize| GuestImage::parse(&bytes[..len], MEM).unwrap_err();
    assert_eq!(cut(0), LoadError::HeaderTruncated { len: 0 });
    assert_eq!(cut(4), LoadError::HeaderTruncated { len: 4 });
    assert_eq!(cut(63), LoadError::HeaderTruncated { len: 63 });
    assert_message(&cut(63), &["invalid executable", "63 bytes"]);
    // Mid program header table (9 headers at 64).
    for len in [64, 64 + 56 * 2 + 10, 64 + 56 * 9 - 1] {
        assert_eq!(cut(len), LoadError::PhdrsTruncated { phoff: 64, phnum: 9, file_len: len });
    }
    assert_message(&cut(100), &["program headers", "past end of file"]);
    // Inside the first PT_NOTE (the OpenBSD note): its header cannot be read.
    let in_note = to_usize(OPENBSD_NOTE_OFFSET) + 10;
    assert!(matches!(cut(in_note), LoadError::Note(NoteError::Truncated { phdr: ph::NOTE_OPENBSD, .. })));
    // Inside the manifest payload.
    let in_mft = to_usize(MFT_NOTE_OFFSET) + 40;
    assert!(matches!(cut(in_mft), LoadError::Note(NoteError::Truncated { phdr: ph::NOTE_MFT, .. })));
    // Inside the data segment: the notes are fine, the segment is not.
    let err = cut(FILE_LEN - 1);
    assert_eq!(
        err,
        LoadError::Segment {
            phdr: ph::DATA,
            reason: SegmentError::PastEndOfFile { offset: DATA_OFFSET, filesz: DATA_SIZE, file_len: FILE_LEN - 1 }
        }
    );
    assert_message(&err, &["segment extends past end of file"]);
}

#[test]
fn not_an_elf_file() {
    let mut bytes = Guest::spt().build();
    bytes[1] = b'Z';
    assert_eq!(GuestImage::parse(&bytes, MEM).unwrap_err(), LoadError::NotElf);
    assert_eq!(GuestImage::parse(b"#!/bin/sh\n", MEM).unwrap_err(), LoadError::NotElf);
}

#[test]
fn wrong_class_32_bit() {
    let mut g = Guest::spt();
    g.class = 1;
    let err = parse_err(&g);
    assert_eq!(err, LoadError::NotElf64(1));
    assert_message(&err, &["invalid executable", "ELFCLASS64"]);
}

#[test]
fn big_endian() {
    let mut g = Guest::spt();
    g.data = 2;
    let err = parse_err(&g);
    assert_eq!(err, LoadError::NotLittleEndian(2));
    assert_message(&err, &["little-endian"]);
}

#[test]
fn wrong_e_version() {
    let mut g = Guest::spt();
    g.version = 0;
    assert_eq!(parse_err(&g), LoadError::BadVersion(0));
}

#[test]
fn wrong_machine() {
    for machine in [3, 183] {
        let mut g = Guest::spt();
        g.machine = machine;
        let err = parse_err(&g);
        assert_eq!(err, LoadError::WrongMachine(machine));
        assert_message(&err, &["EM_X86_64"]);
    }
}

#[test]
fn pie_is_rejected() {
    let mut g = Guest::spt();
    g.e_type = 3;
    let err = parse_err(&g);
    assert_eq!(err, LoadError::Pie);
    assert_message(&err, &["PIE is not supported"]);
    g.e_type = 1;
    assert_eq!(parse_err(&g), LoadError::NotExecutable(1));
}

#[test]
fn bad_header_sizes() {
    let mut g = Guest::spt();
    g.phentsize = 64;
    assert_eq!(parse_err(&g), LoadError::BadPhentsize(64));
    let mut g = Guest::spt();
    g.ehsize = 52;
    assert_eq!(parse_err(&g), LoadError::BadEhsize(52));
}

#[test]
fn no_program_headers() {
    let mut g = Guest::spt();
    g.phnum = Some(0);
    let err = parse_err(&g);
    assert_eq!(err, LoadError::NoProgramHeaders);
    assert_message(&err, &["e_phnum"]);
}

#[test]
fn entry_below_1mib_or_beyond_memory() {
    let mut g = Guest::spt();
    g.entry = 0xf_f000;
    let err = parse_err(&g);
    assert_eq!(err, LoadError::EntryBelowMin { entry: 0xf_f000 });
    assert_message(&err, &["0xff000", "0x100000"]);
    g.entry = MEM;
    let err = parse_err(&g);
    assert_eq!(err, LoadError::EntryBeyondMemory { entry: MEM, mem_size: MEM });
    assert_message(&err, &["0x200000", "--mem"]);
}

#[test]
fn entry_outside_executable_segments() {
    // In the data segment, in BSS and in the text's page padding past p_filesz.
    for entry in [DATA_VADDR + 4, BSS_VADDR, TEXT_VADDR + TEXT_SIZE] {
        let mut g = Guest::spt();
        g.entry = entry;
        let err = parse_err(&g);
        assert_eq!(err, LoadError::EntryNotExecutable { entry });
        assert_message(&err, &[&format!("entry point {entry:#x} is outside the executable segments")]);
    }
}

// ---- notes ----

#[test]
fn missing_abi_note() {
    let mut g = Guest::spt();
    g.phdrs[ph::NOTE_ABI].p_type = PT_NULL;
    let err = parse_err(&g);
    assert_eq!(err, LoadError::NoAbiNote);
    assert_message(&err, &["no Solo5 ABI information found in executable"]);
    // Owned by someone else: not a Solo5 note.
    let mut g = Guest::spt();
    g.set_note(ph::NOTE_ABI, note_bytes(4, b"GNU\0", 16, NT_ABI1, &[2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    assert_eq!(parse_err(&g), LoadError::NoAbiNote);
}

#[test]
fn missing_manifest() {
    let mut g = Guest::spt();
    g.phdrs[ph::NOTE_MFT].p_type = PT_NULL;
    let err = parse_err(&g);
    assert_eq!(err, LoadError::NoManifest);
    assert_message(&err, &["no Solo5 manifest found in executable"]);
}

#[test]
fn abi_note_for_another_target() {
    let mut g = Guest::spt();
    g.set_note(ph::NOTE_ABI, abi_note(3, 2));
    let err = parse_err(&g);
    assert_eq!(err, LoadError::UnsupportedTarget { target: 3 });
    assert_message(&err, &["executable is for the solo5-virtio target, which this tender does not run"]);
    g.set_note(ph::NOTE_ABI, abi_note(0, 2));
    assert_eq!(parse_err(&g), LoadError::UnsupportedTarget { target: 0 });
}

#[test]
fn abi_note_with_another_version() {
    let mut g = Guest::spt();
    g.set_note(ph::NOTE_ABI, abi_note(TARGET_SPT, 1));
    let err = parse_err(&g);
    assert_eq!(err, LoadError::UnsupportedAbiVersion { version: 1 });
    assert_message(&err, &["executable requests unsupported ABI version 1"]);
}

#[test]
fn target_is_checked_before_version() {
    let mut g = Guest::spt();
    g.set_note(ph::NOTE_ABI, abi_note(6, 9));
    assert_eq!(parse_err(&g), LoadError::UnsupportedTarget { target: 6 });
}

#[test]
fn pt_note_smaller_than_a_note_header() {
    let mut g = Guest::spt();
    g.phdrs[ph::NOTE_OPENBSD].filesz = 11;
    let err = parse_err(&g);
    assert_eq!(err, LoadError::Note(NoteError::TooSmall { phdr: ph::NOTE_OPENBSD, filesz: 11 }));
    assert_message(&err, &["phdr[6]", "note does not fall within valid size"]);
    // 12..=19 bytes: too small for a Solo5 note, skipped.
    g.phdrs[ph::NOTE_OPENBSD].filesz = 19;
    parse(&g).unwrap();
}

/// buggyelf.hvt: an MFT1 note with `n_descsz = 1`, smaller than its 4 padding bytes.
#[test]
fn manifest_note_with_descsz_1() {
    let mut g = Guest::hvt();
    let mut note = solo5_note(NT_MFT1, &[0]);
    note.extend_from_slice(&[0; 3]);
    g.set_note(ph::NOTE_MFT, note);
    g.shoff = 0x2f00; // a section table that runs off the end of the file
    let err = parse_err(&g);
    assert_eq!(
        err,
        LoadError::Note(NoteError::Size {
            phdr: ph::NOTE_MFT,
            kind: NoteKind::Manifest,
            reason: NoteSizeError::NoPayload { descsz: 1, padding: 4 }
        })
    );
    assert_message(&err, &["invalid executable", "phdr[8]", "note does not fall within valid size"]);
}

#[test]
fn oversized_descsz() {
    let mut g = Guest::spt();
    g.set_note(ph::NOTE_MFT, solo5_note(NT_MFT1, &vec![0; 6669]));
    let err = parse_err(&g);
    assert_eq!(
        err,
        LoadError::Note(NoteError::Size {
            phdr: ph::NOTE_MFT,
            kind: NoteKind::Manifest,
            reason: NoteSizeError::DescszTooLarge { descsz: 6669, max: 6668 }
        })
    );
    assert_message(&err, &["note does not fall within valid size", "6669"]);

    // 65 entries need more than the largest accepted note.
    let mut g = Guest::spt();
    g.set_manifest(&vec![reserved_entry(); 65]);
    assert!(matches!(
        parse_err(&g),
        LoadError::Note(NoteError::Size { reason: NoteSizeError::DescszTooLarge { .. }, .. })
    ));

    let mut g = Guest::spt();
    g.set_note(ph::NOTE_ABI, solo5_note(NT_ABI1, &[0; 36]));
    assert!(matches!(
        parse_err(&g),
        LoadError::Note(NoteError::Size {
            kind: NoteKind::Abi,
            reason: NoteSizeError::DescszTooLarge { descsz: 36, max: 32 },
            ..
        })
    ));
}

#[test]
fn descsz_zero_or_past_the_segment() {
    let mut g = Guest::spt();
    g.set_note(ph::NOTE_ABI, solo5_note(NT_ABI1, &[]));
    assert!(matches!(parse_err(&g), LoadError::Note(NoteError::Size { reason: NoteSizeError::DescszZero, .. })));

    let mut g = Guest::spt();
    g.phdrs[ph::NOTE_ABI].filesz = 35; // one byte short of 20 + 16
    let err = parse_err(&g);
    assert!(matches!(
        err,
        LoadError::Note(NoteError::Size {
            phdr: ph::NOTE_ABI,
            reason: NoteSizeError::PastSegment { filesz: 35, descsz: 16 },
            ..
        })
    ));
    assert_message(&err, &["note does not fall within valid size"]);
}

// ---- PT_LOAD rules ----

#[test]
fn write_and_exec_segment() {
    let mut g = Guest::spt();
    g.phdrs[ph::TEXT].flags = PF_R | PF_W | PF_X;
    let err = parse_err(&g);
    assert_eq!(err, LoadError::Segment { phdr: ph::TEXT, reason: SegmentError::WriteExec { flags: 7 } });
    assert_message(&err, &["invalid executable", "phdr[1]", "requests WRITE and EXEC permissions"]);
}

#[test]
fn overlapping_segments() {
    let mut g = Guest::spt();
    g.phdrs[ph::DATA].vaddr = TEXT_VADDR + TEXT_SIZE - 0x800;
    let err = parse_err(&g);
    assert_eq!(
        err,
        LoadError::Segment {
            phdr: ph::DATA,
            reason: SegmentError::Overlap { start: TEXT_VADDR + TEXT_SIZE - 0x1000, prev_end: TEXT_VADDR + TEXT_SIZE }
        }
    );
    assert_message(&err, &["overlaps", "0x101000", "0x102000"]);
}

#[test]
fn decreasing_vaddr() {
    let mut g = Guest::spt();
    g.phdrs[ph::TEXT].vaddr = 0x11_0000;
    g.entry = 0x11_0020;
    let err = parse_err(&g);
    assert_eq!(
        err,
        LoadError::Segment {
            phdr: ph::DATA,
            reason: SegmentError::VaddrDecreasing { vaddr: DATA_VADDR, prev: 0x11_0000 }
        }
    );
    assert_message(&err, &["sorted"]);
}

#[test]
fn vaddr_below_1mib() {
    let mut g = Guest::spt();
    g.phdrs[ph::TEXT].vaddr = 0xf_0000;
    g.entry = 0x10_0000; // keep the header check happy; the segment check comes first
    assert_eq!(segment_err(&g), (ph::TEXT, SegmentError::VaddrBelowMin { vaddr: 0xf_0000 }));
}

#[test]
fn huge_sizes() {
    let mut g = Guest::spt();
    g.phdrs[ph::DATA].memsz = u64::MAX;
    assert!(matches!(segment_err(&g), (ph::DATA, SegmentError::MemRangeOverflow { memsz: u64::MAX, .. })));

    let mut g = Guest::spt();
    g.phdrs[ph::DATA].memsz = MEM;
    let (phdr, reason) = segment_err(&g);
    assert_eq!((phdr, &reason), (ph::DATA, &SegmentError::EndBeyondMemory { end: DATA_VADDR + MEM, mem_size: MEM }));

    let mut g = Guest::spt();
    g.phdrs[ph::DATA].filesz = u64::MAX;
    g.phdrs[ph::DATA].memsz = u64::MAX;
    assert_eq!(segment_err(&g), (ph::DATA, SegmentError::FileRangeOverflow { vaddr: DATA_VADDR, filesz: u64::MAX }));

    let mut g = Guest::spt();
    g.phdrs[ph::DATA].filesz = MEM;
    g.phdrs[ph::DATA].memsz = MEM;
    assert_eq!(
        segment_err(&g),
        (ph::DATA, SegmentError::FileRangeBeyondMemory { end: DATA_VADDR + MEM, mem_size: MEM })
    );

    let mut g = Guest::spt();
    g.phdrs[ph::DATA].memsz = DATA_SIZE - 1;
    assert_eq!(segment_err(&g), (ph::DATA, SegmentError::MemszBelowFilesz { memsz: DATA_SIZE - 1, filesz: DATA_SIZE }));

    let mut g = Guest::spt();
    g.phdrs[ph::DATA].vaddr = MEM;
    assert_eq!(segment_err(&g), (ph::DATA, SegmentError::VaddrBeyondMemory { vaddr: MEM, mem_size: MEM }));
}

#[test]
fn segment_past_end_of_file() {
    let mut g = Guest::spt();
    g.phdrs[ph::DATA].filesz = 0x100;
    g.phdrs[ph::DATA].memsz = 0x100;
    let err = parse_err(&g);
    assert_eq!(
        err,
        LoadError::Segment {
            phdr: ph::DATA,
            reason: SegmentError::PastEndOfFile { offset: DATA_OFFSET, filesz: 0x100, file_len: FILE_LEN }
        }
    );
    assert_message(&err, &["phdr[2]", "segment extends past end of file"]);

    let mut g = Guest::spt();
    g.phdrs[ph::DATA].offset = u64::MAX - 4;
    assert!(matches!(segment_err(&g), (ph::DATA, SegmentError::PastEndOfFile { .. })));
}

#[test]
fn non_power_of_two_align() {
    for align in [0, 0x1800] {
        let mut g = Guest::spt();
        g.phdrs[ph::TEXT].align = align;
        let err = parse_err(&g);
        assert_eq!(err, LoadError::Segment { phdr: ph::TEXT, reason: SegmentError::BadAlign { align } });
        assert_message(&err, &["power of two"]);
    }
}

#[test]
fn unaligned_start_and_end() {
    let mut g = Guest::spt();
    g.phdrs[ph::DATA].vaddr = DATA_VADDR + 0x10;
    g.phdrs[ph::DATA].align = 0x10;
    let err = parse_err(&g);
    assert_eq!(
        err,
        LoadError::Segment { phdr: ph::DATA, reason: SegmentError::StartUnaligned { start: DATA_VADDR + 0x10 } }
    );
    assert_message(&err, &["page size"]);

    let mut g = Guest::spt();
    g.phdrs[ph::DATA].align = 0x10;
    assert_eq!(segment_err(&g), (ph::DATA, SegmentError::EndUnaligned { end: DATA_VADDR + DATA_SIZE }));
}

// ---- manifest payload ----

fn with_payload(payload: &[u8]) -> Guest {
    let mut g = Guest::spt();
    g.set_note(ph::NOTE_MFT, mft_note(payload));
    g
}

#[test]
fn manifest_version_2() {
    let g = with_payload(&mft_payload_raw(2, 1, &[reserved_entry()]));
    assert_eq!(manifest_err(&g), ManifestError::Version(2));
}

#[test]
fn manifest_entry_counts() {
    let g = with_payload(&mft_payload_raw(1, 0, &[]));
    assert_eq!(manifest_err(&g), ManifestError::EntryCount(0));
    let g = with_payload(&mft_payload_raw(1, 65, &[reserved_entry()]));
    let err = manifest_err(&g);
    assert_eq!(err, ManifestError::EntryCount(65));
    assert!(err.to_string().contains("65 entries"));
}

#[test]
fn manifest_size_not_8_plus_104n() {
    let mut payload = mft_payload(&[reserved_entry()]);
    payload.extend_from_slice(&[0; 4]);
    let g = with_payload(&payload);
    assert_eq!(manifest_err(&g), ManifestError::Size { len: 116, entries: 1, expected: 112 });
    let g = with_payload(&mft_payload_raw(1, 2, &[reserved_entry()]));
    assert_eq!(manifest_err(&g), ManifestError::Size { len: 112, entries: 2, expected: 216 });
    let g = with_payload(&[1, 0, 0, 0]);
    assert_eq!(manifest_err(&g), ManifestError::TooShort { len: 4 });
}

#[test]
fn manifest_entry_0_not_reserved() {
    let g = with_payload(&mft_payload(&[mft_entry(b"", MFT_BLOCK_BASIC)]));
    assert_eq!(manifest_err(&g), ManifestError::ReservedType(1));
    let g = with_payload(&mft_payload(&[mft_entry(b"storage", MFT_RESERVED_FIRST)]));
    assert_eq!(manifest_err(&g), ManifestError::ReservedName("storage".into()));
}

#[test]
fn manifest_name_without_nul_at_byte_67() {
    let g = with_payload(&mft_payload(&[reserved_entry(), mft_entry(&[b'a'; 68], MFT_BLOCK_BASIC)]));
    assert_eq!(manifest_err(&g), ManifestError::NameNotTerminated { index: 1, byte: b'a' });
    // 67 characters is the longest name.
    let g = with_payload(&mft_payload(&[reserved_entry(), mft_entry(&[b'a'; 67], MFT_BLOCK_BASIC)]));
    parse(&g).unwrap();
}

#[test]
fn manifest_entry_already_attached() {
    let mut e = mft_entry(b"storage", MFT_BLOCK_BASIC);
    e[96] = 1;
    let g = with_payload(&mft_payload(&[reserved_entry(), e]));
    let err = manifest_err(&g);
    assert_eq!(err, ManifestError::Attached { index: 1, name: "storage".into(), value: 1 });
    assert!(err.to_string().contains("attached"));
}

#[test]
fn manifest_unknown_type() {
    let g = with_payload(&mft_payload(&[reserved_entry(), mft_entry(b"gpu0", 7)]));
    let err = manifest_err(&g);
    assert_eq!(err, ManifestError::UnknownType { index: 1, name: "gpu0".into(), raw: 7 });
    assert!(err.to_string().contains("unknown device type 0x7"));
}

#[test]
fn manifest_device_names() {
    let g = with_payload(&mft_payload(&[reserved_entry(), mft_entry(b"", MFT_NET_BASIC)]));
    assert_eq!(manifest_err(&g), ManifestError::EmptyName(1));
    let g = with_payload(&mft_payload(&[
        reserved_entry(),
        mft_entry(b"disk", MFT_BLOCK_BASIC),
        mft_entry(b"disk", MFT_BLOCK_BASIC),
    ]));
    assert_eq!(manifest_err(&g), ManifestError::DuplicateName { index: 2, name: "disk".into(), first: 1 });
}

// ---- robustness ----

/// Values that tend to sit on a boundary of some check.
const INTERESTING: [u64; 14] =
    [0, 1, 11, 12, 20, 56, 64, 0xfff, 0x1000, 0x10_0000, MEM, u32::MAX as u64, i64::MAX as u64, u64::MAX];

#[test]
fn parse_never_panics_on_mutations() {
    let valid = Guest::spt().build();
    let mut devices = Guest::spt();
    devices.set_manifest(&[reserved_entry(), mft_entry(b"storage", MFT_BLOCK_BASIC), mft_entry(b"net", MFT_NET_BASIC)]);
    let seeds = [valid, devices.build()];
    // The bytes a parser looks at: header + program headers, and the notes.
    let hot = [0..64 + 56 * 9, to_usize(OPENBSD_NOTE_OFFSET)..to_usize(MFT_NOTE_OFFSET) + 24 + 8 + 3 * 104];

    let mut rng = Rng(0x5eed_f00d_0105);
    let (mut accepted, mut rejected) = (0, 0);
    for i in 0..4000 {
        let mut bytes = seeds[i % seeds.len()].clone();
        for _ in 0..=rng.below(3) {
            let range = hot[rng.below(hot.len())].clone();
            match rng.below(4) {
                0 => {
                    let at = range.start + rng.below(range.len());
                    bytes[at] ^= 1 << rng.below(8);
                }
                1 => {
                    let at = range.start + rng.below(range.len());
                    bytes[at] = rng.next().to_le_bytes()[0];
                }
                2 => {
                    // A boundary value over an aligned 4- or 8-byte field.
                    let width = if rng.below(2) == 0 { 4 } else { 8 };
                    let at = (range.start + rng.below(range.len() - 8)) & !(width - 1);
                    let v = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                    bytes[at..at + width].copy_from_slice(&v[..width]);
                }
                _ => {
                    // Last: the other mutations index into the full-length image.
                    let len = rng.below(bytes.len() + 1);
                    bytes.truncate(len);
                    break;
                }
            }
        }
        let mem = if rng.below(8) == 0 { INTERESTING[rng.below(INTERESTING.len())] } else { MEM };
        match GuestImage::parse(&bytes, mem) {
            Ok(img) => {
                accepted += 1;
                check_invariants(&img, &bytes, mem);
            }
            Err(e) => {
                rejected += 1;
                assert!(!e.to_string().is_empty());
            }
        }
    }
    // Both outcomes must be exercised, or the mutations are not reaching the checks.
    assert!(accepted > 100 && rejected > 1000, "accepted {accepted}, rejected {rejected}");
}

fn check_invariants(img: &GuestImage, bytes: &[u8], mem: u64) {
    assert!(img.entry >= 0x10_0000 && img.entry < mem);
    assert!(!img.segments.is_empty());
    let mut prev_end = 0;
    for s in &img.segments {
        assert_eq!(img.segment_bytes(bytes, s).len() as u64, s.filesz);
        assert!(s.start >= 0x10_0000 && s.start >= prev_end && s.start <= s.vaddr);
        assert!(s.vaddr + s.memsz <= s.end && s.end <= mem);
        assert!(s.start % 4096 == 0 && s.end % 4096 == 0);
        assert!(!(s.perms.write && s.perms.exec));
        prev_end = s.end;
    }
    assert_eq!(img.kernel_end, prev_end);
    assert_eq!(img.manifest.encode().len(), 8 + 104 * img.manifest.entries().len());
}
