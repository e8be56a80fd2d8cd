//! A classic-BPF interpreter for seccomp programs, with the kernel's rule for combining several
//! filters: what the kernel would answer, for any architecture and syscall number.

use seccompiler::BpfProgram;

use super::Arch;

pub(super) struct Call {
    arch: u32,
    nr: u32,
    args: [u64; 6],
}

impl Call {
    pub(super) fn x86_64(name: &str, args: &[u64]) -> Self {
        Self::raw(
            Arch::X86_64.audit(),
            Arch::X86_64.syscall_nr(name).unwrap(),
            args,
        )
    }

    pub(super) fn raw(arch: u32, nr: u32, args: &[u64]) -> Self {
        let mut a = [0u64; 6];
        a[..args.len()].copy_from_slice(args);
        Self { arch, nr, args: a }
    }

    /// The 32-bit word at `off` of `struct seccomp_data` (little endian).
    fn word(&self, off: u32) -> u32 {
        match off {
            0 => self.nr,
            4 => self.arch,
            16..=63 => {
                let arg = self.args[(off as usize - 16) / 8];
                if off.is_multiple_of(8) {
                    arg as u32
                } else {
                    (arg >> 32) as u32
                }
            }
            _ => panic!("load at offset {off}"),
        }
    }
}

fn run(prog: &BpfProgram, call: &Call) -> u32 {
    let (mut acc, mut pc) = (0u32, 0usize);
    loop {
        let i = &prog[pc];
        pc += 1;
        match i.code {
            0x20 => acc = call.word(i.k),
            0x54 => acc &= i.k,
            0x05 => pc += i.k as usize,
            0x15 | 0x25 | 0x35 | 0x45 => {
                let hit = match i.code {
                    0x15 => acc == i.k,
                    0x25 => acc > i.k,
                    0x35 => acc >= i.k,
                    _ => acc & i.k != 0,
                };
                pc += usize::from(if hit { i.jt } else { i.jf });
            }
            0x06 => return i.k,
            code => panic!("opcode {code:#x} at {}", pc - 1),
        }
    }
}

/// What the kernel does with `call` under `programs` installed in order: the most severe
/// action wins, the newest filter among equals.
pub(super) fn verdict(programs: &[BpfProgram], call: &Call) -> u32 {
    let action = |r: u32| (r & 0xffff_0000) as i32;
    let mut ret = libc::SECCOMP_RET_ALLOW;
    for prog in programs.iter().rev() {
        let cur = run(prog, call);
        if action(cur) < action(ret) {
            ret = cur;
        }
    }
    ret
}
