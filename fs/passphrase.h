/* Where passphrases come from: --passfile (its first line), a no-echo terminal prompt
 * when standard input is a terminal, otherwise the next line of standard input. */
#ifndef PXC_FS_PASSPHRASE_H
#define PXC_FS_PASSPHRASE_H

#include <stddef.h>

/* Reads one passphrase into guarded memory (*out, free with passphrase_free).
 * `confirm` asks twice on a terminal.  Returns 0, or -1 after printing the reason. */
int passphrase_read(const char *passfile, const char *prompt, int confirm, char **out, size_t *len);
void passphrase_free(char *pass);

#endif
