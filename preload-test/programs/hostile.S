/* Code the unwinder cannot trust: no unwind information at all, and a frame pointer that
 * points nowhere while it runs. */
    .text

/* void no_unwind_spin(unsigned long iterations) */
    .globl no_unwind_spin
    .type no_unwind_spin, @function
no_unwind_spin:
    push %rbp
    movabs $0x4141414141414140, %rbp
1:  dec %rdi
    jnz 1b
    pop %rbp
    ret
    .size no_unwind_spin, .-no_unwind_spin

/* void call_on_stack(void *stack_top, void (*fn)(void)): runs fn with the stack pointer in
 * the given memory, then switches back. */
    .globl call_on_stack
    .type call_on_stack, @function
call_on_stack:
    push %rbp
    push %rbx
    mov %rsp, %rbx
    mov %rdi, %rsp
    and $-16, %rsp
    call *%rsi
    mov %rbx, %rsp
    pop %rbx
    pop %rbp
    ret
    .size call_on_stack, .-call_on_stack

    .section .note.GNU-stack,"",@progbits
