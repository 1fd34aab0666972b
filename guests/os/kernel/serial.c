/* Serial console on the 16550 UART at 0x3F8 and a small kprintf. */
#include "kernel.h"

#define COM1 0x3f8
#define LSR_DATA_READY 0x01
#define LSR_THR_EMPTY 0x20

void serial_init(void) {
  outb(COM1 + 1, 0x00);  /* IER: no UART interrupts, we poll       */
  outb(COM1 + 3, 0x80);  /* LCR: DLAB on to set the divisor        */
  outb(COM1 + 0, 0x01);  /* divisor 1 = 115200 baud (ignored by the board) */
  outb(COM1 + 1, 0x00);
  outb(COM1 + 3, 0x03);  /* LCR: 8N1, DLAB off                    */
  outb(COM1 + 2, 0x07);  /* FCR: enable and clear FIFOs           */
  outb(COM1 + 4, 0x03);  /* MCR: DTR | RTS                        */
}

/* With the FIFO on (FCR), THRE means the 16-byte transmit FIFO is empty: up to
 * 16 bytes may follow before the next LSR poll, as Linux's 8250 driver does. */
#define TX_FIFO 16
static int tx_room;

void serial_putc(char c) {
  if (tx_room == 0) {
    while (!(inb(COM1 + 5) & LSR_THR_EMPTY)) {}
    tx_room = TX_FIFO;
  }
  tx_room--;
  outb(COM1, (u8)c);
}

int serial_getc(void) {
  if (!(inb(COM1 + 5) & LSR_DATA_READY)) return -1;
  return inb(COM1);
}

static void put_str(const char *s, int width, int left) {
  int n = (int)strlen(s);
  if (!left) for (; n < width; n++) serial_putc(' ');
  while (*s) serial_putc(*s++);
  if (left) for (; n < width; n++) serial_putc(' ');
}

static void put_num(u64 v, int base, int width, char pad, int neg) {
  char buf[24]; int i = 0;
  do { buf[i++] = "0123456789abcdef"[v % (u64)base]; v /= (u64)base; } while (v);
  if (neg) buf[i++] = '-';
  for (; i < width; width--) serial_putc(pad);
  while (i) serial_putc(buf[--i]);
}

/* Supports %s %c %d %u %x %p with an optional '-', '0', width and 'l'. */
void kvprintf(const char *fmt, va_list ap) {
  for (; *fmt; fmt++) {
    if (*fmt != '%') { serial_putc(*fmt); continue; }
    fmt++;
    int left = 0; char pad = ' '; int width = 0;
    if (*fmt == '-') { left = 1; fmt++; }
    if (*fmt == '0') { pad = '0'; fmt++; }
    while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
    int is_long = 0;
    while (*fmt == 'l') { is_long = 1; fmt++; }
    switch (*fmt) {
    case 's': put_str(va_arg(ap, const char *), width, left); break;
    case 'c': serial_putc((char)va_arg(ap, int)); break;
    case 'd': {
      i64 v = is_long ? va_arg(ap, i64) : va_arg(ap, int);
      put_num(v < 0 ? (u64)-v : (u64)v, 10, width, pad, v < 0);
      break;
    }
    case 'u': put_num(is_long ? va_arg(ap, u64) : va_arg(ap, unsigned), 10, width, pad, 0); break;
    case 'x': put_num(is_long ? va_arg(ap, u64) : va_arg(ap, unsigned), 16, width, pad, 0); break;
    case 'p': serial_putc('0'); serial_putc('x'); put_num(va_arg(ap, u64), 16, 16, '0', 0); break;
    case '%': serial_putc('%'); break;
    default: serial_putc('%'); serial_putc(*fmt); break;
    }
  }
}

void kprintf(const char *fmt, ...) {
  va_list ap; va_start(ap, fmt); kvprintf(fmt, ap); va_end(ap);
}

/* Power off through the board's ACPI PM port; isa-debug-exit as a fallback
 * carries a non-zero status. */
void power_off(int code) {
  cli();
  if (code == 0) outw(0x604, 0x2000);
  outb(0xf4, (u8)code);
  for (;;) __asm__ volatile("hlt");
}

void panic(const char *fmt, ...) {
  cli();
  kprintf("\nKERNEL PANIC: ");
  va_list ap; va_start(ap, fmt); kvprintf(fmt, ap); va_end(ap);
  kprintf("\n");
  power_off(3);
}
