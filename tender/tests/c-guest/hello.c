/* A Solo5 spt guest written in C against the ABI alone (no solo5-rt, no Solo5
 * headers): the layouts below come from docs/solo5-abi.md, as Solo5's own
 * bindings define them. It behaves like Solo5's test_hello: prints its command
 * line and "SUCCESS" if that is exactly "Hello_Solo5", then exits 0; and it keeps
 * an initialised global, as Solo5's test_globals does ("RUCCESS" -> "SUCCESS"). */
typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned char u8;

struct spt_boot_info {          /* docs/solo5-abi.md §5.2, 40 bytes at 0x11000 */
    u64 mem_size;
    u64 kernel_end;
    const char *cmdline;
    const void *mft;
    int epollfd;
    int timerfd;
};

/* ABI1 note, §1.3: Solo5, type "ABI1", target spt (2), version 2. */
struct abi_note { u32 namesz, descsz, type; char name[8]; u32 target, version, r0, r1; };
__attribute__((section(".note.solo5.abi"), aligned(4), used))
static const struct abi_note abi = { 6, 16, 0x31494241, "Solo5", 2, 2, 0, 0 };

/* MFT1 note, §2.1-2.2: 4 padding bytes, version 1, one entry (the reserved one). */
struct mft_entry { char name[68]; u32 type; u8 props[16]; u8 backing[8]; u8 attached; u8 pad[7]; };
struct mft_note {
    u32 namesz, descsz, type; char name[8]; u32 pad;
    u32 version, entries; struct mft_entry e[1];
} __attribute__((aligned(8)));
__attribute__((section(".note.solo5.manifest"), aligned(8), used))
static const struct mft_note mft = { 6, 4 + 8 + 104, 0x3154464d, "Solo5", 0, 1, 1, { { "", 0x40000000 } } };

__attribute__((section(".interp"), used))
static const char interp[] = "/nonexistent/solo5/";

static char greeting[] = "RUCCESS\n";

static long sys3(long nr, long a, long b, long c) {
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return ret;
}

static void puts_(const char *s) {
    long n = 0;
    while (s[n]) n++;
    sys3(1 /* write */, 1, (long)s, n);
}

static int streq(const char *a, const char *b) {
    while (*a && *a == *b) a++, b++;
    return *a == *b;
}

__attribute__((section(".text.start"), noreturn))
void _start(const struct spt_boot_info *bi) {
    sys3(158 /* arch_prctl */, 0x1002 /* ARCH_SET_FS */, 0, 0);
    puts_("c-guest: command line: ");
    puts_(bi->cmdline);
    puts_("\n");
    greeting[0]++;
    if (streq(bi->cmdline, "Hello_Solo5"))
        puts_(greeting);
    sys3(231 /* exit_group */, 0, 0, 0);
    __builtin_unreachable();
}
