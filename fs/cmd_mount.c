/* `pixcrypt mount`: unlock the volume, take its lock, mount, daemonize, serve. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <stddef.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/cli.h"
#include "fs/log.h"
#include "fs/places.h"
#include "fs/pxcfs.h"
#include "fs/volume_lock.h"

static const char mount_usage[] =
    "usage: pixcrypt mount [-f] [-d] [-o OPTIONS] [--passfile FILE] [--allow-weak-profile]\n"
    "                      [--recovery-code [FILE]] CIPHERDIR MOUNTPOINT\n"
    "  -f            stay in the foreground, log to stderr\n"
    "  -d            debug: log every FUSE request (implies -f)\n"
    "  -o OPTIONS    mount options, e.g. ro,allow_other\n"
    "                cache_mb=N: plaintext cache for decoded images, in MiB (default 256)\n"
    "                allow_rollback: read files older than the keystore says (logged)\n"
    "                codec_slots=N: images decoded or converted at once (default: CPUs)\n"
    "                noxattr: no extended attributes (saves a request per file for ls -l)\n"
    "  --allow-weak-profile  mount a volume made with init --profile chaos (not secure)\n"
    "  --recovery-code [FILE]  unlock with the recovery code (from FILE, or asked for)\n"
    "                          instead of the passphrase\n";

#define DEFAULT_CACHE_MB 256

/* pixcrypt's own -o options, taken out before libfuse sees the rest. */
struct pxc_mount_opts {
    unsigned cache_mb;
    int allow_rollback;
    unsigned codec_slots;
    int noxattr;
};

static const struct fuse_opt pxc_opt_spec[] = {
    {"cache_mb=%u", offsetof(struct pxc_mount_opts, cache_mb), 0},
    {"allow_rollback", offsetof(struct pxc_mount_opts, allow_rollback), 1},
    {"codec_slots=%u", offsetof(struct pxc_mount_opts, codec_slots), 0},
    {"noxattr", offsetof(struct pxc_mount_opts, noxattr), 1},
    FUSE_OPT_END,
};

/* fsname=… for /proc/mounts; commas would end the option, so escape them. */
static void add_base_options(struct fuse_args *args, const char *cipherdir, int read_only)
{
    char opts[8192];
    size_t k = (size_t)snprintf(opts, sizeof opts, "default_permissions,subtype=pixcrypt,fsname=");
    for (const char *p = cipherdir; *p && k + 3 < sizeof opts; p++) {
        if (*p == ',' || *p == '\\')
            opts[k++] = '\\';
        opts[k++] = *p;
    }
    opts[k] = '\0';
    fuse_opt_add_arg(args, "-o");
    fuse_opt_add_arg(args, opts);
    if (read_only) {
        fuse_opt_add_arg(args, "-o");
        fuse_opt_add_arg(args, "ro");
    }
}

/* Every inode the kernel knows holds an O_PATH fd in the daemon: allow as many open
 * files as permitted. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_max < (1 << 20)) {
        struct rlimit more = {1 << 20, 1 << 20};
        if (setrlimit(RLIMIT_NOFILE, &more) == 0) /* root may raise the hard limit */
            return;
    }
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

/* With the mount live: daemonize (unless -f), then serve requests until unmounted. */
static int serve(struct fuse_session *se, int foreground, int lock_fd)
{
    if (!foreground) {
        if (fuse_daemonize(0) != 0)
            return PXC_EXIT_ERROR;
        pxc_log_to_syslog();
    }
    volume_lock_record_pid(lock_fd);
    raise_fd_limit();
    umask(0); /* modes come from the callers, already masked by the kernel */
    struct fuse_loop_config *loop = fuse_loop_cfg_create();
    if (!loop)
        return PXC_EXIT_ERROR;
    int rc = fuse_session_loop_mt(se, loop);
    fuse_loop_cfg_destroy(loop);
    return rc == 0 ? PXC_EXIT_OK : PXC_EXIT_ERROR;
}

int cmd_mount(int argc, char **argv)
{
    static const struct option opts[] = {{"passfile", required_argument, NULL, 'p'},
                                         {"allow-weak-profile", no_argument, NULL, 'W'},
                                         {"recovery-code", optional_argument, NULL, 'R'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    const char *passfile = NULL, *codefile = NULL;
    int foreground = 0, debug = 0, allow_weak = 0, use_code = 0, c;

    fuse_opt_add_arg(&args, "pixcrypt");
    while ((c = getopt_long(argc, argv, "fdo:h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            foreground = 1;
            break;
        case 'd':
            foreground = debug = 1;
            break;
        case 'o':
            fuse_opt_add_arg(&args, "-o");
            fuse_opt_add_arg(&args, optarg);
            break;
        case 'p':
            passfile = optarg;
            break;
        case 'W':
            allow_weak = 1;
            break;
        case 'R':
            use_code = 1;
            codefile = optarg;
            break;
        case 'h':
            fputs(mount_usage, stdout);
            fuse_opt_free_args(&args);
            return PXC_EXIT_OK;
        default:
            fputs(mount_usage, stderr);
            fuse_opt_free_args(&args);
            return PXC_EXIT_USAGE;
        }
    }
    /* `--recovery-code FILE CIPHERDIR MOUNTPOINT`: the file is the first of three. */
    if (use_code && !codefile && optind + 3 == argc)
        codefile = argv[optind++];
    if (optind + 2 != argc) {
        fputs(mount_usage, stderr);
        fuse_opt_free_args(&args);
        return PXC_EXIT_USAGE;
    }
    if (debug) {
        fuse_opt_add_arg(&args, "-d");
        pxc_log_set_debug(1);
    }
    /* Image buffers are large and short-lived: give them back to the system when freed
     * (a fixed mmap threshold) and keep few arenas, so that the daemon's resident memory
     * follows what it holds (the bound the README states) rather than its history. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    mallopt(M_ARENA_MAX, 4);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    struct pxc_mount_opts mopts = {DEFAULT_CACHE_MB, 0, cpus > 0 ? (unsigned)cpus : 1, 0};
    if (fuse_opt_parse(&args, &mopts, pxc_opt_spec, NULL) != 0) {
        fputs(mount_usage, stderr);
        fuse_opt_free_args(&args);
        return PXC_EXIT_USAGE;
    }
    if (mopts.cache_mb > (1u << 20)) {
        fprintf(stderr, "pixcrypt mount: cache_mb=%u is too large\n", mopts.cache_mb);
        fuse_opt_free_args(&args);
        return PXC_EXIT_USAGE;
    }
    if (mopts.codec_slots < 1 || mopts.codec_slots > 256) {
        fprintf(stderr, "pixcrypt mount: codec_slots=%u: use 1 to 256\n", mopts.codec_slots);
        fuse_opt_free_args(&args);
        return PXC_EXIT_USAGE;
    }

    int exit_code = PXC_EXIT_ERROR, lock_fd = -1, read_only = 0;
    char *cipherdir = realpath(argv[optind], NULL);
    const char *mountpoint = argv[optind + 1];
    keystore *ks = NULL;
    pxc_keys *keys = NULL;
    uint8_t *master = NULL;
    struct fuse_session *se = NULL;
    int handlers = 0, mounted = 0;
    struct stat st;
    pxc_fs fs;

    memset(&fs, 0, sizeof fs);
    fs.root_fd = -1;
    pthread_rwlock_init(&fs.ns_lock, NULL);
    sem_init(&fs.codec_slots, 0, mopts.codec_slots);
    if (!cipherdir) {
        fprintf(stderr, "pixcrypt mount: %s: %s\n", argv[optind], strerror(errno));
        exit_code = PXC_EXIT_NOT_A_VOLUME;
        goto out;
    }
    if (stat(mountpoint, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "pixcrypt mount: mountpoint %s: %s\n", mountpoint,
                errno && !S_ISDIR(st.st_mode) ? strerror(errno) : "not a directory");
        exit_code = PXC_EXIT_MOUNT;
        goto out;
    }
    int rc = keystore_open(&ks, cipherdir);
    if (rc != KS_OK) {
        report_keystore_error("mount", cipherdir, rc);
        exit_code = exit_for_keystore(rc);
        goto out;
    }
    /* The names mode decides how every name is read: no guessing. */
    ks_volume_info vinfo = {0};
    rc = keystore_volume_info(ks, &vinfo);
    if (rc != KS_OK) {
        report_keystore_error("mount", cipherdir, rc);
        exit_code = exit_for_keystore(rc);
        goto out;
    }
    /* The chaos profile is a research tool: chaotic maps iterated in finite precision
     * are no CSPRNG (pixcrypt(1), PROFILES).  Refused before asking for the passphrase. */
    if (vinfo.profile == KS_PROFILE_CHAOS && !allow_weak) {
        fprintf(stderr,
                "pixcrypt mount: %s uses the chaos research profile, which is not secure;\n"
                "  mount it only for experiments, with --allow-weak-profile\n",
                cipherdir);
        exit_code = PXC_EXIT_USAGE;
        goto out;
    }
    lock_fd = volume_lock_take(cipherdir, "mount");
    if (lock_fd == VOLUME_LOCK_BUSY) {
        exit_code = PXC_EXIT_LOCKED;
        goto out;
    }
    if (lock_fd == VOLUME_LOCK_ERROR)
        goto out;
    read_only = lock_fd == VOLUME_LOCK_READ_ONLY;
    master = sodium_malloc(KS_MASTER_KEY_BYTES);
    unlock_source how = {passfile, "Passphrase: ", use_code, codefile};
    if (!master ||
        (exit_code = cli_unlock_volume(ks, "mount", cipherdir, &how, master)) != PXC_EXIT_OK)
        goto out;
    exit_code = PXC_EXIT_ERROR;
    keys = pxc_keys_new(master);
    if (keys && vinfo.profile == KS_PROFILE_CHAOS) {
        keys->profile = PXC_PROFILE_CHAOS;
        pxc_log(LOG_WARNING, "%s: new PNG files use the chaos research profile (not secure)",
                cipherdir);
    }
    fs.root_fd = open(cipherdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    fs.inodes = inode_table_new(cipherdir);
    fs.cache = plain_cache_new((size_t)mopts.cache_mb << 20);
    if (!keys || fs.root_fd < 0 || !fs.inodes || !fs.cache ||
        names_init(&fs.names, master, vinfo.names == KS_NAMES_ENCRYPTED) != 0) {
        fprintf(stderr, "pixcrypt mount: cannot set up: %s\n", strerror(errno));
        goto out;
    }
    inode_table_set_names(fs.inodes, &fs.names);
    fs.cipherdir = cipherdir;
    fs.keys = keys;
    fs.ks = ks;
    if (places_init(&fs, master) != 0) {
        fprintf(stderr, "pixcrypt mount: cannot set up the keystore's file places\n");
        goto out;
    }
    fs.daemon_is_root = geteuid() == 0;
    fs.allow_rollback = mopts.allow_rollback;
    fs.no_xattr = mopts.noxattr;

    add_base_options(&args, cipherdir, read_only);
    se = fuse_session_new(&args, pxcfs_operations(), sizeof(struct fuse_lowlevel_ops), &fs);
    if (!se) {
        fprintf(stderr, "pixcrypt mount: invalid mount options\n");
        exit_code = PXC_EXIT_USAGE;
        goto out;
    }
    if (fuse_set_signal_handlers(se) != 0)
        goto out;
    handlers = 1;
    if (fuse_session_mount(se, mountpoint) != 0) {
        fprintf(stderr, "pixcrypt mount: cannot mount on %s\n", mountpoint);
        exit_code = PXC_EXIT_MOUNT;
        goto out;
    }
    mounted = 1;
    exit_code = serve(se, foreground, lock_fd);
    pxc_log(LOG_INFO, "images decoded whole: %llu, reads served from sealed headers: %llu",
            (unsigned long long)fs.whole_decodes, (unsigned long long)fs.header_reads);
out:
    if (mounted)
        fuse_session_unmount(se);
    if (handlers)
        fuse_remove_signal_handlers(se);
    if (se)
        fuse_session_destroy(se);
    fuse_opt_free_args(&args);
    inode_table_free(fs.inodes);
    names_free(&fs.names);
    plain_cache_free(fs.cache);
    pthread_rwlock_destroy(&fs.ns_lock);
    sem_destroy(&fs.codec_slots);
    if (fs.root_fd >= 0)
        close(fs.root_fd);
    pxc_keys_free(keys);
    if (master)
        sodium_free(master);
    keystore_close(ks);
    if (lock_fd >= 0)
        close(lock_fd);
    free(cipherdir);
    return exit_code;
}
