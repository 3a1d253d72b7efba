//! Reads the tables back the way a guest does: from the RSDP, through the XSDT.

use std::process::Command;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::*;

const PM: PmHardware = PmHardware {
    sci_irq: 9,
    pm1a_evt: 0x600,
    pm1a_cnt: 0x604,
    pm_tmr: 0x608,
    reset_port: 0xCF9,
    reset_value: 6,
    s5_slp_typ: 5,
};
const PLATFORM: [PciIrq; 1] = [PciIrq { slot: 2, ioapic_pin: 16 }];

fn image(cpus: u32) -> Vec<u8> {
    build(&AcpiConfig { cpus, pci: &PLATFORM, pm: PM }).unwrap()
}

fn sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The table at guest address `addr`, checked: signature, length, checksum.
fn table<'a>(image: &'a [u8], addr: u64, signature: &[u8; 4]) -> &'a [u8] {
    let start = (addr - ACPI_START) as usize;
    assert_eq!(&image[start..start + 4], signature);
    let len = u32_at(image, start + 4) as usize;
    let t = &image[start..start + len];
    assert_eq!(sum(t), 0, "{} checksum", String::from_utf8_lossy(signature));
    t
}

/// (RSDP → XSDT) entries, checked.
fn xsdt_entries(image: &[u8]) -> Vec<u64> {
    assert_eq!(&image[0..8], b"RSD PTR ");
    assert_eq!(image[15], 2, "RSDP revision");
    assert_eq!(sum(&image[..20]), 0);
    assert_eq!(u32_at(image, 20), 36);
    assert_eq!(sum(&image[..36]), 0);
    let xsdt = table(image, u64_at(image, 24), b"XSDT");
    (36..xsdt.len()).step_by(8).map(|at| u64_at(xsdt, at)).collect()
}

/// Entry types of the MADT, walking the variable-length structures.
fn madt_types(madt: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut at = 44;
    while at < madt.len() {
        types.push(madt[at]);
        let len = madt[at + 1] as usize;
        assert!(len >= 2);
        at += len;
    }
    assert_eq!(at, madt.len(), "entries end at the table's end");
    types
}

fn madt(image: &[u8]) -> &[u8] {
    table(image, xsdt_entries(image)[1], b"APIC")
}

#[test]
fn rsdp_and_xsdt_reach_every_table() {
    let img = image(1);
    let entries = xsdt_entries(&img);
    assert_eq!(entries.len(), 2);
    let fadt = table(&img, entries[0], b"FACP");
    assert_eq!(fadt[8], 6, "FADT major revision");
    assert_eq!(fadt.len(), 276);
    table(&img, u64_at(fadt, 140), b"DSDT");
    let facs = (u64_at(fadt, 132) - ACPI_START) as usize;
    assert_eq!(&img[facs..facs + 4], b"FACS");
    assert_eq!(facs % 64, 0, "FACS is 64-byte aligned");
    table(&img, entries[1], b"APIC");
}

#[test]
fn fadt_describes_the_pm_device() {
    let img = image(2);
    let fadt = table(&img, xsdt_entries(&img)[0], b"FACP");
    assert_eq!(u16_at(fadt, 46), 9, "SCI_INT");
    assert_eq!(u32_at(fadt, 48), 0, "SMI_CMD: ACPI is always on");
    assert_eq!(u32_at(fadt, 56), 0x600, "PM1a_EVT_BLK");
    assert_eq!(u32_at(fadt, 64), 0x604, "PM1a_CNT_BLK");
    assert_eq!(u32_at(fadt, 76), 0x608, "PM_TMR_BLK");
    assert_eq!((fadt[88], fadt[89], fadt[91]), (4, 2, 4));
    assert_eq!(fadt[108], 0x32, "century");
    assert_eq!(u16_at(fadt, 109), 0b101, "legacy devices, no VGA, 8042 absent");
    let flags = u32_at(fadt, 112);
    assert_ne!(flags & (1 << 8), 0, "TMR_VAL_EXT");
    assert_ne!(flags & (1 << 10), 0, "RESET_REG_SUP");
    assert_eq!(flags & (1 << 20), 0, "not hardware-reduced");
    assert_eq!(&fadt[116..120], &[1, 8, 0, 1], "reset register: 8-bit I/O");
    assert_eq!(u64_at(fadt, 120), 0xCF9);
    assert_eq!(fadt[128], 6, "reset value");
    assert_eq!(u64_at(fadt, 148 + 4), 0x600, "X_PM1a_EVT_BLK");
    assert_eq!(fadt[148 + 1], 32);
    assert_eq!(u64_at(fadt, 172 + 4), 0x604, "X_PM1a_CNT_BLK");
    assert_eq!(fadt[172 + 1], 16);
    assert_eq!(u64_at(fadt, 208 + 4), 0x608, "X_PM_TMR_BLK");
}

#[test]
fn madt_counts_for_1_and_4_vcpus() {
    // Local APICs, I/O APIC, IRQ0 and SCI overrides, LINT1 NMI.
    assert_eq!(madt_types(madt(&image(1))), vec![0, 1, 2, 2, 4]);
    assert_eq!(madt_types(madt(&image(4))), vec![0, 0, 0, 0, 1, 2, 2, 4]);
}

#[test]
fn madt_entries() {
    let img = image(4);
    let m = madt(&img);
    assert_eq!(m[8], 5, "MADT revision");
    assert_eq!(u32_at(m, 36), 0xFEE0_0000);
    assert_eq!(u32_at(m, 40), 1, "PCAT_COMPAT");
    // Third local APIC: UID 2, APIC id 2, enabled.
    assert_eq!(&m[44 + 16..44 + 24], &[0, 8, 2, 2, 1, 0, 0, 0]);
    let ioapic = 44 + 4 * 8;
    assert_eq!(&m[ioapic..ioapic + 4], &[1, 12, crate::mptable::ioapic_id(4), 0]);
    assert_eq!(u32_at(m, ioapic + 4), 0xFEC0_0000);
    assert_eq!(u32_at(m, ioapic + 8), 0, "GSI base");
    let irq0 = ioapic + 12;
    assert_eq!(&m[irq0..irq0 + 4], &[2, 10, 0, 0]);
    assert_eq!((u32_at(m, irq0 + 4), u16_at(m, irq0 + 8)), (2, 0b0101));
    let sci = irq0 + 10;
    assert_eq!(&m[sci..sci + 4], &[2, 10, 0, 9]);
    assert_eq!((u32_at(m, sci + 4), u16_at(m, sci + 8)), (9, 0b1101), "level, active high");
    assert_eq!(&m[sci + 10..sci + 16], &[4, 6, 0xFF, 0, 0, 1]);
}

#[test]
fn madt_uses_x2apic_entries_above_254() {
    let img = image(288);
    let types = madt_types(madt(&img));
    assert_eq!(types.iter().filter(|t| **t == 0).count(), 255);
    assert_eq!(types.iter().filter(|t| **t == 9).count(), 33);
    assert_eq!(types.iter().filter(|t| **t == 0xA).count(), 1);
    assert!(img.len() as u64 <= ACPI_MAX_SIZE);
}

#[test]
fn pci_routing_rotates_from_slot_2() {
    assert_eq!(pci_intx_gsi(2, 0), 16);
    assert_eq!(pci_intx_gsi(2, 3), 19);
    assert_eq!(pci_intx_gsi(3, 0), 17);
    assert_eq!(pci_intx_gsi(0, 0), 22);
    assert_eq!(pci_intx_gsi(31, 3), 16, "(31 + 3 - 2) mod 8 = 0");
    for slot in 0..32 {
        for pin in 0..4 {
            assert!((16..24).contains(&pci_intx_gsi(slot, pin)));
        }
    }
}

#[test]
fn tables_land_below_the_mp_table_and_are_found_by_a_scan() {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 2 << 20)]).unwrap();
    crate::mptable::write_mptable(&mem, 4, &PLATFORM).unwrap();
    let rsdp = write_acpi_tables(&mem, &AcpiConfig { cpus: 4, pci: &PLATFORM, pm: PM }).unwrap();
    let mut bios = vec![0u8; 0x2_0000];
    mem.read_slice(&mut bios, GuestAddress(0xE_0000)).unwrap();
    let found = (0..bios.len()).step_by(16).find(|at| &bios[*at..*at + 8] == b"RSD PTR ");
    assert_eq!(found.map(|at| 0xE_0000 + at as u64), Some(rsdp));
    let mp = (MPTABLE_START - 0xE_0000) as usize;
    assert_eq!(&bios[mp..mp + 4], b"_MP_", "MP table intact");
    assert!(image(4).len() as u64 <= MPTABLE_START - ACPI_START);
}

/// Runs `iasl -d` on each table; skipped (with a message) without iasl.
#[test]
fn iasl_disassembles_every_table() {
    if Command::new("iasl").arg("-v").output().is_err() {
        eprintln!("SKIPPED: iasl not found (Debian package acpica-tools)");
        return;
    }
    let img = image(4);
    let entries = xsdt_entries(&img);
    let fadt = table(&img, entries[0], b"FACP");
    let dsdt = table(&img, u64_at(fadt, 140), b"DSDT");
    let dir = std::env::temp_dir().join(format!("xenkvm-acpi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in [("dsdt", dsdt), ("facp", fadt), ("apic", madt(&img))] {
        let path = dir.join(format!("{name}.dat"));
        std::fs::write(&path, bytes).unwrap();
        let out = Command::new("iasl").arg("-d").arg(&path).current_dir(&dir).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !text.contains("Error"), "iasl -d {name}:\n{text}");
    }
    // The disassembled DSDT must compile again without errors or warnings.
    let out = Command::new("iasl").arg("dsdt.dsl").current_dir(&dir).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "iasl dsdt.dsl:\n{text}");
    assert!(text.contains("0 Errors") && text.contains("0 Warnings"), "iasl dsdt.dsl:\n{text}");
    let dsl = std::fs::read_to_string(dir.join("dsdt.dsl")).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let flat = dsl.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains("0x0002FFFF, Zero, Zero, 0x10 }"), "APIC mode: slot 2 INTA# on GSI 16");
    assert!(flat.contains("0x0002FFFF, Zero, \\_SB.LNKA, Zero }"), "PIC mode: slot 2 INTA# through LNKA");
    assert_eq!(flat.matches("EisaId (\"PNP0C0F\")").count(), 4);
}

#[test]
fn pic_mode_links_cover_the_pci_gsis() {
    assert_eq!([16, 17, 18, 19, 20, 23].map(pci_gsi_pic_irq), [10, 11, 10, 11, 10, 11].map(Some));
    assert_eq!([0, 9, 15, 24, u32::MAX].map(pci_gsi_pic_irq), [None; 5]);
    assert_eq!(pci_gsi_pic_irq(pci_intx_gsi(2, 0)), Some(LINK_IRQS[0]), "the platform device: LNKA");
}

/// Runs `acpiexec` on the DSDT with `commands`; `None` (with a message)
/// without acpiexec.
fn acpiexec(commands: &str) -> Option<String> {
    if Command::new("acpiexec").arg("-v").output().is_err() {
        eprintln!("SKIPPED: acpiexec not found (Debian package acpica-tools)");
        return None;
    }
    let img = image(1);
    let fadt = table(&img, xsdt_entries(&img)[0], b"FACP");
    let dsdt = table(&img, u64_at(fadt, 140), b"DSDT");
    let dir = std::env::temp_dir().join(format!("xenkvm-acpiexec-{}-{}", std::process::id(), commands.len()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dsdt.dat"), dsdt).unwrap();
    let out = Command::new("acpiexec").args(["-b", commands, "dsdt.dat"]).current_dir(&dir).output().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    Some(String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn link_devices_and_pic_method_evaluate() {
    let commands = [
        "evaluate \\_SB.LNKA._CRS",
        "evaluate \\_SB.LNKB._PRS",
        "evaluate \\_SB.LNKC._STA",
        "evaluate \\_SB.LNKD._DIS",
        "evaluate \\PICF",
        "evaluate \\_PIC 1",
        "evaluate \\PICF",
        "evaluate \\_SB.PCI0._PRT",
    ];
    let Some(text) = acpiexec(&commands.join("; ")) else { return };
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    // IRQ (Level, ActiveLow, Shared) {10} and {11}, then the end tag.
    assert!(flat.contains("[Buffer] Length 06 = 0000: 23 00 04 18 79 00"), "{text}");
    assert!(flat.contains("[Buffer] Length 06 = 0000: 23 00 08 18 79 00"), "{text}");
    assert!(flat.contains("[Integer] = 000000000000000F"), "{text}");
    // PICF starts at 0 (PIC mode); \_PIC(1) selects the GSI table.
    let picf = flat.find("Evaluating \\PICF").unwrap();
    assert!(flat[picf..].contains("[Integer] = 0000000000000000 Evaluating \\_PIC"), "{text}");
    assert!(flat.contains("[Integer] = 0000000000000001 Evaluating \\_SB.PCI0._PRT"), "{text}");
    let slot2 = "[Integer] = 000000000002FFFF [Integer] = 0000000000000000 [Integer] = 0000000000000000 [Integer] = 0000000000000010";
    assert!(flat.contains(slot2), "{text}");
    assert!(!flat.contains("ACPI Error") && !flat.contains("ACPI Warning"), "{text}");
}
