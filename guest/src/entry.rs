//! PVH entry: from 32-bit protected mode to 64-bit Rust.
//!
//! The VMM starts the vCPU at `pvh_entry` (named by the `XEN_ELFNOTE_PHYS32_ENTRY`
//! note below) in 32-bit protected mode with paging off, flat 4 GiB segments,
//! interrupts off and `ebx` holding the physical address of `struct
//! hvm_start_info`. There is no usable stack.
//!
//! The code below
//! 1. zeroes `.bss` (which also holds the page tables and the stack),
//! 2. builds the page tables: 4 GiB identity-mapped with 2 MiB pages, plus an
//!    alias of physical 0..1 GiB at virtual `ALIAS_BASE` (PML4 slot 1, which
//!    reuses the first page directory),
//! 3. loads a GDT with a 64-bit code segment,
//! 4. enables PAE, long mode (EFER.LME) and paging (CR0.PG with CR0.WP set,
//!    CR0.CD/NW clear); it also sets CR4.OSFXSR/OSXMMEXCPT, CR0.MP and clears
//!    CR0.EM/TS so that SSE would work, although the guest is compiled without
//!    SSE (the host emulates this guest and cannot execute x87/SSE code),
//! 5. far-jumps to 64-bit code, loads the stack and calls
//!    `guest_main(start_info_paddr)`.
//!
//! The guest never loads an IDT: it must never take an exception or interrupt.
//! Page-table entries are plain (no NX, no PCD/PWT), so data pages such as the
//! hypercall page are executable.

use core::arch::global_asm;

/// Virtual address at which physical 0..1 GiB is mapped a second time.
pub const ALIAS_BASE: u64 = 0x0000_0080_0000_0000;
/// Size of the alias window.
pub const ALIAS_SIZE: u64 = 1 << 30;
/// A canonical virtual address that the page tables leave unmapped (PML4 slot 128).
pub const UNMAPPED_VA: u64 = 0x0000_4000_0000_0000;
/// Size of the boot stack.
pub const STACK_SIZE: usize = 64 * 1024;

global_asm!(
    // ---- The PVH ELF note: name "Xen", type XEN_ELFNOTE_PHYS32_ENTRY (18),
    // ---- a 4-byte descriptor holding the 32-bit physical entry address.
    ".pushsection .note.Xen, \"a\", @note",
    ".balign 4",
    ".long 4",          // n_namesz: "Xen\0"
    ".long 4",          // n_descsz
    ".long 18",         // n_type: XEN_ELFNOTE_PHYS32_ENTRY
    ".asciz \"Xen\"",
    ".balign 4",
    ".long pvh_entry",
    ".balign 4",
    ".popsection",

    // ---- Boot data: GDT and its descriptor. In .data (writable: the CPU sets
    // ---- the descriptors' accessed bits), which also keeps the data PT_LOAD's
    // ---- p_filesz non-zero so that loaders account for the whole image.
    ".pushsection .data.boot, \"aw\"",
    ".balign 16",
    "boot_gdt:",
    ".quad 0",                      // 0x00: null
    ".quad 0x00af9a000000ffff",     // 0x08: 64-bit code, DPL 0
    ".quad 0x00cf92000000ffff",     // 0x10: flat data, DPL 0
    "boot_gdt_end:",
    ".balign 8",
    "boot_gdt_desc:",
    ".word boot_gdt_end - boot_gdt - 1",
    ".quad boot_gdt",
    ".popsection",

    // ---- Page tables and stack live in .bss (zeroed below).
    ".pushsection .bss.boot, \"aw\", @nobits",
    ".balign 4096",
    "boot_pml4:",  ".skip 4096",
    "boot_pdpt_identity:", ".skip 4096",   // PML4[0]: 0..512 GiB, 4 entries used
    "boot_pdpt_alias:", ".skip 4096",      // PML4[1]: ALIAS_BASE.., 1 entry used
    "boot_pd:", ".skip 4 * 4096",          // 2048 x 2 MiB = 4 GiB
    ".balign 16",
    "boot_stack_bottom:", ".skip {stack_size}",
    "boot_stack_top:",
    ".popsection",

    // ---- 32-bit entry.
    ".pushsection .text.entry, \"ax\"",
    ".code32",
    ".globl pvh_entry",
    "pvh_entry:",
    "cli",
    "cld",
    // ebx (start_info) is preserved by everything below.
    // Zero .bss: [__bss_start, __bss_end) from the linker script.
    "mov $__bss_start, %edi",
    "mov $__bss_end, %ecx",
    "sub %edi, %ecx",
    "xor %eax, %eax",
    "rep stosb",

    // Page directories: entry i maps physical i * 2 MiB (P | RW | PS).
    "mov $boot_pd, %edi",
    "mov $0x83, %eax",
    "mov $2048, %ecx",
    "1:",
    "mov %eax, (%edi)",
    "add $0x200000, %eax",
    "add $8, %edi",
    "dec %ecx",
    "jnz 1b",

    // Identity PDPT: 4 entries -> the 4 page directories (P | RW).
    "mov $boot_pdpt_identity, %edi",
    "mov $(boot_pd + 0x3), %eax",
    "mov $4, %ecx",
    "2:",
    "mov %eax, (%edi)",
    "add $4096, %eax",
    "add $8, %edi",
    "dec %ecx",
    "jnz 2b",

    // Alias PDPT: one entry -> the first page directory (physical 0..1 GiB).
    "movl $(boot_pd + 0x3), boot_pdpt_alias",

    // PML4: slot 0 identity, slot 1 alias.
    "movl $(boot_pdpt_identity + 0x3), boot_pml4",
    "movl $(boot_pdpt_alias + 0x3), boot_pml4 + 8",

    "lgdt boot_gdt_desc",

    // CR4: PAE (5) | OSFXSR (9) | OSXMMEXCPT (10).
    "mov %cr4, %eax",
    "or $((1 << 5) | (1 << 9) | (1 << 10)), %eax",
    "mov %eax, %cr4",

    "mov $boot_pml4, %eax",
    "mov %eax, %cr3",

    // EFER (MSR 0xC0000080): LME (8).
    "mov $0xC0000080, %ecx",
    "rdmsr",
    "or $(1 << 8), %eax",
    "wrmsr",

    // CR0: set PE (0), MP (1), NE (5), WP (16), PG (31);
    //      clear EM (2), TS (3), NW (29), CD (30).
    "mov %cr0, %eax",
    "and $~((1 << 2) | (1 << 3) | (1 << 29) | (1 << 30)), %eax",
    "or $((1 << 0) | (1 << 1) | (1 << 5) | (1 << 16) | (1 << 31)), %eax",
    "mov %eax, %cr0",

    "ljmp $0x08, $pvh_entry64",

    // ---- 64-bit continuation.
    ".code64",
    "pvh_entry64:",
    "mov $0x10, %eax",
    "mov %eax, %ds",
    "mov %eax, %es",
    "mov %eax, %ss",
    "xor %eax, %eax",
    "mov %eax, %fs",
    "mov %eax, %gs",
    "mov $boot_stack_top, %rsp",
    "xor %ebp, %ebp",
    // guest_main(start_info_paddr): rdi = zero-extended ebx. rsp is 16-byte
    // aligned here, so the callee sees the ABI's rsp % 16 == 8 after the call.
    "mov %ebx, %edi",
    "call guest_main",
    "3:",
    "cli",
    "hlt",
    "jmp 3b",
    ".popsection",
    stack_size = const STACK_SIZE,
    options(att_syntax)
);
