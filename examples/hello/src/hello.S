/* hello: a static x86-64 Linux program with no libc, small enough to commit.
 * Prints a greeting and, when run with arguments, each argument on its own line.
 * Rebuild: see src/README.md (the committed binary is what the lock pins). */
    .globl _start
    .text
_start:
    mov     $1, %edi                /* write(1, msg, len) */
    lea     msg(%rip), %rsi
    mov     $len, %edx
    mov     $1, %eax
    syscall
    mov     (%rsp), %r12            /* argc */
    lea     16(%rsp), %r13          /* argv[1] */
    dec     %r12
1:  test    %r12, %r12
    jz      3f
    mov     (%r13), %rsi            /* strlen(argv[i]) */
    xor     %edx, %edx
2:  cmpb    $0, (%rsi,%rdx)
    je      4f
    inc     %rdx
    jmp     2b
4:  mov     $1, %edi
    mov     $1, %eax
    syscall
    mov     $1, %edi                /* newline */
    lea     nl(%rip), %rsi
    mov     $1, %edx
    mov     $1, %eax
    syscall
    add     $8, %r13
    dec     %r12
    jmp     1b
3:  xor     %edi, %edi              /* exit(0) */
    mov     $60, %eax
    syscall
    .section .rodata
msg:    .ascii "Hello from a reproducible image!\n"
    .set len, . - msg
nl:     .ascii "\n"
    .section .note.GNU-stack,"",@progbits
