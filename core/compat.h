/*
 * compat.h: included last by every .c file of the project (after system
 * headers). Poisons the functions we never want to see: unbounded copies,
 * formats without length, tokenizers with hidden state, unchecked number
 * conversion.
 */
#ifndef POSTIE_COMPAT_H
#define POSTIE_COMPAT_H

#if defined(__GNUC__) && !defined(POSTIE_NO_POISON)
#pragma GCC poison strcpy strcat sprintf vsprintf strtok atoi atol gets
#endif

#endif
