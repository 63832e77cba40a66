//! Property tests for every parser in the tender: the ELF/manifest loader and the
//! command line. Whatever the input: no panic, no hang, and an accepted input satisfies
//! the invariants the backends rely on. Case counts are fixed so CI time is bounded.

#[path = "fixtures/elf_builder.rs"]
#[allow(dead_code)]
mod elf_builder;

use std::ffi::OsString;

use elf_builder::*;
use proptest::prelude::*;
use tender::cli::{self, Command};
use tender::loader::{GuestImage, Manifest};

/// What a backend relies on in an accepted image (docs/solo5-abi.md §3).
fn assert_invariants(image: &GuestImage, file_len: usize, mem: u64) {
    let mut prev_end = 0x10_0000;
    let mut entry_in_text = false;
    for s in &image.segments {
        assert!(s.start >= prev_end, "segments overlap or go below 1 MiB: {s:?}");
        assert!(s.start <= s.vaddr && s.vaddr + s.memsz <= s.end && s.end <= mem, "{s:?} outside memory");
        assert!(s.start % 4096 == 0 && s.end % 4096 == 0, "{s:?} not page aligned");
        assert!(!(s.perms.write && s.perms.exec), "W+X accepted: {s:?}");
        assert!(s.filesz <= s.memsz && s.filesz > 0);
        assert!(s.file_range().end <= file_len, "{s:?} reads past the file");
        entry_in_text |= s.perms.exec && (s.vaddr..s.vaddr + s.filesz).contains(&image.entry);
        assert!(image.kernel_end >= s.end);
        prev_end = s.end;
    }
    assert!(entry_in_text, "entry {:#x} outside the executable segments", image.entry);
    assert!(image.entry >= 0x10_0000 && image.entry < mem);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        if let Ok(image) = GuestImage::parse(&bytes, MEM) {
            assert_invariants(&image, bytes.len(), MEM);
        }
    }

    #[test]
    fn mutated_guests_are_accepted_only_when_sound(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in proptest::option::of(any::<prop::sample::Index>()),
        mem_mib in 1u64..64,
    ) {
        let mut bytes = Guest::spt().build();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        let mem = mem_mib << 20;
        if let Ok(image) = GuestImage::parse(&bytes, mem) {
            assert_invariants(&image, bytes.len(), mem);
        }
    }

    /// hvt rounds `--mem` down after parsing: checking the image against the smaller
    /// size must give exactly what a parse for that size gives.
    #[test]
    fn a_smaller_memory_is_checked_as_a_parse_would(
        vaddr in prop_oneof![Just(TEXT_VADDR), 0x10_0000u64..0x40_0000],
        memsz in prop_oneof![Just(TEXT_SIZE), 0u64..0x40_0000],
        mem_kib in 256u64..2048,
    ) {
        let mut g = Guest::spt();
        g.phdrs[ph::TEXT].vaddr = vaddr;
        g.phdrs[ph::TEXT].memsz = memsz;
        let bytes = g.build();
        if let Ok(image) = GuestImage::parse(&bytes, MEM) {
            let smaller = mem_kib << 10;
            prop_assert_eq!(image.check_memory(smaller), GuestImage::parse(&bytes, smaller).map(|_| ()));
        }
    }

    #[test]
    fn arbitrary_segment_fields_are_checked(
        vaddr in prop_oneof![Just(TEXT_VADDR), any::<u64>(), 0x10_0000u64..0x40_0000],
        filesz in prop_oneof![Just(TEXT_SIZE), any::<u64>(), 0u64..0x4000],
        memsz in prop_oneof![Just(TEXT_SIZE), any::<u64>(), 0u64..0x40_0000],
        offset in prop_oneof![Just(TEXT_OFFSET), any::<u64>(), 0u64..0x4000],
        align in prop_oneof![Just(0x1000u64), any::<u64>(), (0u32..24).prop_map(|s| 1u64 << s)],
        flags in 0u32..8,
    ) {
        let mut g = Guest::spt();
        g.phdrs[ph::TEXT] = Phdr { p_type: PT_LOAD, flags, offset, vaddr, filesz, memsz, align };
        let bytes = g.build();
        if let Ok(image) = GuestImage::parse(&bytes, MEM) {
            assert_invariants(&image, bytes.len(), MEM);
        }
    }

    #[test]
    fn manifest_payloads_round_trip_or_fail(
        entries in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 104), 0..4),
        version in prop_oneof![Just(1u32), any::<u32>()],
        count_delta in -1i64..2,
        keep_valid_names in any::<bool>(),
    ) {
        let mut raw: Vec<[u8; 104]> = vec![reserved_entry()];
        for e in entries {
            let mut entry: [u8; 104] = e.try_into().unwrap();
            if keep_valid_names {
                entry[..68].fill(0);
                entry[0] = b'a' + u8::try_from(raw.len()).unwrap();
                let device_type = 1 + (u32::from(entry[72]) & 1);
                entry[68..72].copy_from_slice(&device_type.to_le_bytes());
                entry[96] = 0;
            }
            raw.push(entry);
        }
        let count = u32::try_from((raw.len() as i64 + count_delta).max(0)).unwrap();
        let payload = mft_payload_raw(version, count, &raw);
        if let Ok(m) = Manifest::parse(&payload) {
            prop_assert_eq!(m.encode(), payload);
            prop_assert!(!m.entries().is_empty() && m.entries().len() <= 64);
        }
    }

    #[test]
    fn command_lines_never_panic(args in proptest::collection::vec(arg_strategy(), 0..8)) {
        let parsed = cli::parse(args.iter().map(OsString::from));
        if let Ok(Command::Run(run)) = parsed {
            prop_assert!(run.cmdline.len() < hypercall_abi::CMDLINE_SIZE);
            prop_assert!(run.mem_bytes >= 1 << 20 && run.mem_bytes <= cli::MAX_MEM_MIB << 20);
            for name in run.blocks.keys().chain(run.nets.keys()) {
                prop_assert!(!name.is_empty() && name.len() <= 67 && name.bytes().all(|b| b.is_ascii_alphanumeric()));
            }
            for block in run.blocks.values() {
                prop_assert!(block.block_size >= 512 && block.block_size.is_power_of_two());
            }
        }
    }
}

/// Arguments that look like the tender's own, with hostile values.
fn arg_strategy() -> impl Strategy<Value = String> {
    let value = "[A-Za-z0-9:=./@ -]{0,12}";
    prop_oneof![
        value.prop_map(|v| format!("--mem={v}")),
        (value, value).prop_map(|(n, v)| format!("--block:{n}={v}")),
        (value, value).prop_map(|(n, v)| format!("--block-sector-size:{n}={v}")),
        (value, value).prop_map(|(n, v)| format!("--net:{n}={v}")),
        (value, value).prop_map(|(n, v)| format!("--net-mac:{n}={v}")),
        Just("--".to_owned()),
        Just("--x-exec-heap".to_owned()),
        Just("inspect".to_owned()),
        "\\PC{0,20}",
    ]
}
