#include "fs/passphrase.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define PASS_MAX 4096

/* Reads one line (without its line ending) into buf; returns its length or -1 at EOF. */
static long read_line(FILE *in, char *buf, size_t cap)
{
    size_t n = 0;
    int c;
    while ((c = getc(in)) != EOF && c != '\n') {
        if (n + 1 < cap)
            buf[n++] = (char)c;
    }
    if (c == EOF && n == 0)
        return -1;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    return (long)n;
}

static long prompt_no_echo(const char *prompt, char *buf, size_t cap)
{
    struct termios old, quiet;
    long n;

    fprintf(stderr, "%s", prompt);
    fflush(stderr);
    if (tcgetattr(STDIN_FILENO, &old) != 0)
        return -1;
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    quiet.c_lflag |= ICANON;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    n = read_line(stdin, buf, cap);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    fprintf(stderr, "\n");
    return n;
}

int passphrase_read(const char *passfile, const char *prompt, int confirm, char **out, size_t *len)
{
    char *buf = sodium_malloc(PASS_MAX);
    long n;

    if (!buf) {
        fprintf(stderr, "pixcrypt: out of memory\n");
        return -1;
    }
    if (passfile) {
        FILE *f = fopen(passfile, "r");
        if (!f) {
            fprintf(stderr, "pixcrypt: cannot read passphrase file %s: %s\n", passfile,
                    strerror(errno));
            sodium_free(buf);
            return -1;
        }
        n = read_line(f, buf, PASS_MAX);
        fclose(f);
    } else if (isatty(STDIN_FILENO)) {
        n = prompt_no_echo(prompt, buf, PASS_MAX);
        if (n > 0 && confirm) {
            char *again = sodium_malloc(PASS_MAX);
            long m = again ? prompt_no_echo("Repeat passphrase: ", again, PASS_MAX) : -1;
            int same = m == n && again && sodium_memcmp(buf, again, (size_t)n) == 0;
            if (again)
                sodium_free(again);
            if (!same) {
                fprintf(stderr, "pixcrypt: passphrases do not match\n");
                sodium_free(buf);
                return -1;
            }
        }
    } else {
        n = read_line(stdin, buf, PASS_MAX);
    }
    if (n <= 0) {
        fprintf(stderr, "pixcrypt: %s\n", n < 0 ? "no passphrase given" : "empty passphrase");
        sodium_free(buf);
        return -1;
    }
    *out = buf;
    *len = (size_t)n;
    return 0;
}

void passphrase_free(char *pass)
{
    if (pass)
        sodium_free(pass);
}
