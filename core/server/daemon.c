/* daemon.c - postiliond's main(): options, start-up order, signals.
 *
 * Start-up is strict: the configuration, the spool, DNS, every plugin and
 * every listener must come up, or the daemon prints one message naming the
 * file, key and fix, and exits non-zero; it never runs half-configured.
 * The order is fixed by privileges: all that needs root (binding port 25,
 * reading keys in plugin init) happens before the drop to [server] user.
 *
 * Without -f the daemon detaches; the parent waits on a pipe until the
 * child is serving (exit 0) or failed (the child's message, exit 1), so
 * scripts see start-up errors either way.
 *
 * Under systemd (Type=notify) the service manager hears READY=1 once the
 * listeners accept and privileges are dropped, RELOADING=1 and READY=1
 * around each reload, STOPPING=1 at SIGTERM (util/sd-notify.c).
 *
 * SIGHUP reloads (sessions in progress keep their configuration; a bad new
 * file is refused and logged while the old one serves).  SIGTERM and SIGINT
 * stop accepting, give sessions timeout_shutdown to finish, wait for every
 * commit already under way, and exit 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pst-build-config.h"

#include "config/config.h"
#include "deliver/control.h"
#include "deliver/delivery-job.h"
#include "deliver/delivery-transport.h"
#include "tables/tables.h"
#include "deliver/local-helper.h"
#include "queue/queue-manager.h"
#include "dns/dns.h"
#include "generation/generation.h"
#include "hooks/hooks.h"
#include "queue/spool.h"
#include "server/daemon.h"
#include "server/server.h"
#include "transport/transport.h"
#include "util/log.h"
#include "util/sd-notify.h"
#include "util/signal-watch.h"

typedef struct {
  char *config_path;     /* owned */
  PstConfig *config;     /* owned: the configuration in effect */
  PstGeneration *generation; /* owned: config, plugins, tables, services */
  PstSmtpCache *connection_cache; /* owned: every generation's */
  PstSpool *spool;       /* owned */
  PstServer *server;     /* owned */
  PstQueueManager *queue_manager; /* owned: delivery (core/deliver) */
  PstControl *control;   /* owned: SPOOL/control, for `postilion` */
  GMainLoop *loop;       /* owned */
  int ready_fd;          /* the parent's pipe while detached, else -1 */
  gboolean started_as_root; /* the delivery helper could have been forked */
} PstDaemon;

/* --- Options ----------------------------------------------------------- */

typedef struct {
  char *config;
  gboolean foreground;
  gboolean check;
  gboolean verbose;
  gboolean version;
} PstDaemonOptions;

static gboolean daemon_parse_options(int *argc, char ***argv,
                                     PstDaemonOptions *options) {
  GOptionEntry entries[] = {
      {"config", 'c', 0, G_OPTION_ARG_FILENAME, &options->config,
       "Configuration file (default " PST_CONFIG_DEFAULT_PATH ")", "FILE"},
      {"foreground", 'f', 0, G_OPTION_ARG_NONE, &options->foreground,
       "Stay in the foreground and log to stderr", NULL},
      {"check", 0, 0, G_OPTION_ARG_NONE, &options->check,
       "Check the configuration and the plugins, then exit (0 when valid)",
       NULL},
      {"verbose", 'v', 0, G_OPTION_ARG_NONE, &options->verbose,
       "Log debug messages; with --check, print the plugin chains", NULL},
      {"version", 0, 0, G_OPTION_ARG_NONE, &options->version,
       "Print the version and exit", NULL},
      {NULL},
  };
  g_autoptr(GOptionContext) context =
      g_option_context_new("- the Postilion mail transfer agent");
  g_option_context_set_summary(
      context, "Receives mail over SMTP into a durable queue, with policy "
               "plugins listed in the\nconfiguration file "
               "(see postiliond(8) and postilion.conf(5)).");
  g_option_context_add_main_entries(context, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse(context, argc, argv, &error)) {
    fprintf(stderr, "postiliond: %s (see postiliond --help)\n",
            error->message);
    return FALSE;
  }
  if (*argc > 1) {
    fprintf(stderr, "postiliond: unexpected argument '%s' (see postiliond "
                    "--help)\n", (*argv)[1]);
    return FALSE;
  }
  return TRUE;
}

/* --- Detaching --------------------------------------------------------- */

/* Forks; the parent waits for the child's word and exits with it. */
static int daemon_detach(void) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0)
    return -1;
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid > 0) {
    close(fds[1]);
    char buffer[4096];
    GString *said = g_string_new(NULL);
    ssize_t n;
    while ((n = read(fds[0], buffer, sizeof buffer)) > 0)
      g_string_append_len(said, buffer, n);
    int status = g_str_equal(said->str, "ready\n") ? 0 : 1;
    if (status != 0)
      fputs(said->len > 0 ? said->str : "postiliond: exited at start-up\n",
            stderr);
    _exit(status);
  }
  close(fds[0]);
  setsid();
  if (chdir("/") < 0)
    return -1;
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    if (null > STDERR_FILENO)
      close(null);
  }
  return fds[1];
}

/* Reports a start-up failure where the admin will see it. */
static void daemon_fail(PstDaemon *daemon, const char *message) {
  g_autofree char *line = g_strdup_printf("postiliond: %s\n", message);
  if (daemon->ready_fd >= 0) {
    ssize_t ignored = write(daemon->ready_fd, line, strlen(line));
    (void)ignored;
    g_warning("%s", message);
  } else {
    fputs(line, stderr);
  }
}

/* Tells the service manager, if one listens; a failure is only logged. */
static void daemon_notify(const char *state) {
  g_autoptr(GError) error = NULL;
  if (!pst_sd_notify(state, &error))
    g_warning("%s", error->message);
}

static void daemon_report_ready(PstDaemon *daemon) {
  g_autofree char *state = g_strdup_printf(
      "READY=1\nSTATUS=accepting mail (%u listeners)\nMAINPID=%ld",
      daemon->config->listeners->len, (long)getpid());
  daemon_notify(state);
  if (daemon->ready_fd < 0)
    return;
  ssize_t ignored = write(daemon->ready_fd, "ready\n", 6);
  (void)ignored;
  close(daemon->ready_fd);
  daemon->ready_fd = -1;
}

/* --- Privileges -------------------------------------------------------- */

/* Gives the spool and what is directly in it to the daemon's user. */
static gboolean daemon_chown_spool(const char *directory, uid_t uid, gid_t gid,
                                   int depth, GError **error) {
  if (chown(directory, uid, gid) < 0) {
    int saved = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved),
                "cannot give %s to the daemon's user: %s", directory,
                g_strerror(saved));
    return FALSE;
  }
  if (depth == 0)
    return TRUE;
  g_autoptr(GDir) dir = g_dir_open(directory, 0, NULL);
  const char *name;
  while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
    g_autofree char *path = g_build_filename(directory, name, NULL);
    if (!daemon_chown_spool(path, uid, gid, depth - 1, error))
      return FALSE;
  }
  return TRUE;
}

static gboolean daemon_drop_privileges(PstDaemon *daemon, GError **error) {
  const char *user = daemon->config->server.user;
  if (geteuid() != 0)
    return TRUE;
  if (user == NULL) {
    g_warning("running as root: set [server] user in %s to run as an "
              "unprivileged user", daemon->config_path);
    return TRUE;
  }
  struct passwd *entry = getpwnam(user);
  if (entry == NULL) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                "[server] user = %s: no such user; create it (adduser "
                "--system %s) or change the key", user, user);
    return FALSE;
  }
  if (!daemon_chown_spool(pst_spool_get_directory(daemon->spool),
                          entry->pw_uid, entry->pw_gid, 2, error))
    return FALSE;
  if (initgroups(user, entry->pw_gid) < 0 || setgid(entry->pw_gid) < 0 ||
      setuid(entry->pw_uid) < 0) {
    int saved = errno;
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved),
                "cannot switch to user %s: %s", user, g_strerror(saved));
    return FALSE;
  }
  g_message("running as user %s", user);
  return TRUE;
}

/* Plugins a snippet enables that are not installed (a removed package):
 * not loaded, but worth a line at each start and reload. */
static void daemon_log_plugin_notes(const PstConfig *config) {
  for (guint i = 0; config->plugin_notes && config->plugin_notes[i]; i++)
    g_warning("%s", config->plugin_notes[i]);
}

/* --- Signals ----------------------------------------------------------- */

/* Loads the plugins for a new configuration. */
static PstPluginSet *daemon_reload_plugins(PstDaemon *daemon,
                                           PstConfig *config, GError **error) {
  /* A new set either way: sessions in progress keep the old set and its
   * chains; plugins loaded by both are shared and told to reload. */
  PstPluginSet *plugins = pst_generation_get_plugins(daemon->generation);
  if (pst_plugin_set_matches(plugins, config))
    return pst_plugin_set_reload_new(plugins, config, error);
  return pst_plugin_set_load(config, error);
}

/* The generation's commit callback: a message is queued. */
static void daemon_committed(const char *id, gboolean held,
                             gpointer user_data) {
  PstDaemon *daemon = user_data;
  if (!held && daemon->queue_manager != NULL)
    pst_queue_manager_add(daemon->queue_manager, id);
}

static PstGeneration *daemon_generation_new(PstDaemon *daemon,
                                            PstConfig *config,
                                            PstPluginSet *plugins,
                                            PstDeliverTables *tables,
                                            PstDnsResolver *dns) {
  PstGenerationSetup setup = {
      .config = config,
      .plugins = plugins,
      .tables = tables,
      .dns = dns,
      .connection_cache = daemon->connection_cache,
      .committed = daemon_committed,
      .committed_data = daemon,
  };
  return pst_generation_new(&setup);
}

/* Reasons a new configuration needs a restart instead of a reload. */
static gboolean daemon_check_reloadable(PstDaemon *daemon, PstConfig *config,
                                        GError **error) {
  if (g_strcmp0(config->server.spool, daemon->config->server.spool) != 0 ||
      g_strcmp0(config->server.user, daemon->config->server.user) != 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                "[server] spool and user change only with a restart");
    return FALSE;
  }
  /* The helper is forked as root before any thread: too late now. */
  if (config->delivery.system_users && daemon->started_as_root &&
      !pst_local_helper_available()) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                "[delivery] system_users = true needs a restart of "
                "postiliond: the privileged delivery helper is started "
                "only at start-up, before the privilege drop");
    return FALSE;
  }
  return TRUE;
}

/* The tables of a new configuration; when its files do not load, the
 * running generation's (`tables_error` says why). */
static PstDeliverTables *daemon_reload_tables(PstDaemon *daemon,
                                              PstConfig *config,
                                              GError **tables_error) {
  PstDeliverTables *tables = pst_deliver_tables_load(config, tables_error);
  if (tables != NULL)
    return tables;
  return pst_deliver_tables_ref(pst_generation_get_tables(daemon->generation));
}

static void daemon_reload(PstDaemon *daemon) {
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) tables_error = NULL;
  g_message("reload: reading %s", daemon->config_path);
  daemon_notify("RELOADING=1\nSTATUS=reloading the configuration");
  g_autoptr(PstConfig) config = pst_config_load(daemon->config_path, &error);
  g_autoptr(PstPluginSet) plugins = NULL;
  if (config != NULL && daemon_check_reloadable(daemon, config, &error))
    plugins = daemon_reload_plugins(daemon, config, &error);
  /* The new [dns] group's resolver: new sessions and jobs use it, those
   * in progress keep their generation's. */
  g_autoptr(PstDnsResolver) dns = NULL;
  if (plugins != NULL) {
    dns = pst_dns_resolver_open(&config->dns, &error);
    if (dns == NULL)
      g_prefix_error(&error, "keeping the previous DNS configuration: ");
  }
  g_autoptr(PstGeneration) generation = NULL;
  if (dns != NULL) {
    g_autoptr(PstDeliverTables) tables =
        daemon_reload_tables(daemon, config, &tables_error);
    generation = daemon_generation_new(daemon, config, plugins, tables, dns);
  }
  if (generation != NULL &&
      !pst_transport_check_listeners(
          config, pst_generation_get_transport(generation), &error))
    g_clear_pointer(&generation, pst_generation_unref);
  if (generation == NULL ||
      !pst_server_reload(daemon->server, generation, &error)) {
    g_warning("reload refused, the running configuration stays: %s",
              error->message);
    daemon_notify("READY=1\nSTATUS=reload refused, see the log");
    return;
  }
  pst_config_unref(daemon->config);
  daemon->config = g_steal_pointer(&config);
  pst_generation_unref(daemon->generation);
  daemon->generation = g_steal_pointer(&generation);
  /* Lookups outside any generation (plugins' own timers, worker threads). */
  pst_dns_set_default(dns);
  /* Delivery stays on the last generation whose tables loaded. */
  if (tables_error != NULL)
    g_warning("reload: %s; the last good mailbox and alias tables stay",
              tables_error->message);
  else
    pst_queue_manager_set_generation(daemon->queue_manager, daemon->generation);
  g_message("reload: new sessions use the configuration of %s",
            daemon->config_path);
  daemon_log_plugin_notes(daemon->config);
  daemon_notify("READY=1\nSTATUS=accepting mail");
}

static gboolean daemon_stopped(gpointer user_data) {
  PstDaemon *daemon = user_data;
  g_main_loop_quit(daemon->loop);
  return G_SOURCE_REMOVE;
}

static void daemon_terminate(PstDaemon *daemon) {
  g_message("stopping: no new connections; sessions have %u ms to finish",
            daemon->config->server.timeout_shutdown_ms);
  daemon_notify("STOPPING=1\nSTATUS=stopping");
  pst_server_stop(daemon->server, daemon_stopped, daemon);
}

/* SIGHUP reloads; SIGTERM and SIGINT stop.  Ignored once the server is
 * gone: daemon_free() still runs the main context while it waits for the
 * delivery attempts and the plugins' calls under way. */
static void daemon_signal(int signum, gpointer user_data) {
  PstDaemon *daemon = user_data;
  if (daemon->server == NULL)
    return;
  if (signum == SIGHUP)
    daemon_reload(user_data);
  else
    daemon_terminate(user_data);
}

/* Every session and spool file is a descriptor: take the whole hard
 * limit, since the usual soft limit (1024) is less than max_connections. */
static void daemon_raise_file_limit(const PstConfig *config) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) < 0)
    return;
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  guint wanted = config->server.max_connections + 256;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < wanted)
    g_warning("the open files limit (%lu) is below max_connections + 256 "
              "(%u): raise it (LimitNOFILE= in the systemd unit, ulimit -n)",
              (unsigned long)limit.rlim_cur, wanted);
}

/* --- Start and stop ---------------------------------------------------- */

/* The control socket's "plugins": the chains in effect now. */
static void daemon_describe_plugins(GString *out, gpointer user_data) {
  PstDaemon *daemon = user_data;
  pst_plugin_set_describe(pst_generation_get_plugins(daemon->generation),
                          daemon->config, out);
}

/* The queue manager and its control socket, before the privilege drop
 * (their files in the spool are then given to [server] user). */
static gboolean daemon_start_delivery(PstDaemon *daemon, GError **error) {
  daemon->queue_manager = pst_queue_manager_new(
      daemon->generation, daemon->spool, &pst_delivery_deliverer, error);
  if (daemon->queue_manager == NULL)
    return FALSE;
  g_autofree char *path = g_build_filename(
      pst_spool_get_directory(daemon->spool), "control", NULL);
  daemon->control = pst_control_new(path, daemon->queue_manager, error);
  if (daemon->control == NULL)
    return FALSE;
  pst_control_set_describe(daemon->control, daemon_describe_plugins, daemon);
  return TRUE;
}

/* Brings up spool, DNS, plugins, listeners and delivery, in that order. */
static gboolean daemon_start(PstDaemon *daemon, GError **error) {
  PstConfig *config = daemon->config;
  daemon_raise_file_limit(config);
  daemon->started_as_root = geteuid() == 0;
  /* No program the daemon runs (the SPF evaluators) may gain a privilege
   * through a set-uid file; set before any thread, since the flag is
   * per-thread and inherited (the privilege drop's setuid() then clears
   * every capability). */
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno),
                "cannot set no_new_privs: %s", g_strerror(errno));
    return FALSE;
  }
  /* Before any thread: the helper that delivers as system users. */
  if (config->delivery.system_users && !pst_local_helper_start(error))
    return FALSE;
  /* Before the listeners exist: a SIGHUP or SIGTERM that arrives once a
   * port accepts (an admin, a supervisor, a test) must not take the default
   * action and kill us; it waits for the loop instead.  After the helper's
   * fork.  One source for the three (util/signal-watch.c says why). */
  static const int signals[] = {SIGHUP, SIGTERM, SIGINT};
  if (!pst_signal_watch_add(signals, G_N_ELEMENTS(signals), daemon_signal,
                            daemon, error))
    return FALSE;
  daemon->spool = pst_spool_open(config->server.spool, error);
  guint queued = 0;
  if (daemon->spool == NULL || !pst_spool_recover(daemon->spool, &queued, error))
    return FALSE;
  if (!pst_dns_start(&config->dns, error))
    return FALSE;
  g_autoptr(PstPluginSet) plugins = pst_plugin_set_load(config, error);
  if (plugins == NULL)
    return FALSE;
  g_autoptr(PstDeliverTables) tables = pst_deliver_tables_load(config, error);
  if (tables == NULL)
    return FALSE;
  daemon->connection_cache = pst_smtp_cache_new();
  daemon->generation = daemon_generation_new(daemon, config, plugins, tables,
                                             pst_dns_get_default());
  if (!pst_transport_check_listeners(
          config, pst_generation_get_transport(daemon->generation), error))
    return FALSE;
  daemon->server = pst_server_new(daemon->generation, daemon->spool, error);
  if (daemon->server == NULL || !daemon_start_delivery(daemon, error) ||
      !daemon_drop_privileges(daemon, error))
    return FALSE;
  pst_queue_manager_start(daemon->queue_manager);
  g_message("postiliond %s started: %u messages in the queue", PST_VERSION,
            queued);
  daemon_log_plugin_notes(config);
  return TRUE;
}

static gboolean daemon_flag_set(gpointer user_data) {
  *(gboolean *)user_data = TRUE;
  return G_SOURCE_REMOVE;
}

/* After the last generation: a plugin that a call still holds (its worker
 * thread has not completed the call yet, or the release that follows the
 * completion is posted to the main context) is still loaded, and its
 * shutdown() (which waits for its threads) has not run.  Runs the main
 * context until the last such call is released, for at most [server]
 * timeout_shutdown more: the sessions' calls were cancelled when they were
 * closed, so a plugin that honours its cancellable completes soon. */
static void daemon_unload_plugins(PstDaemon *daemon) {
  if (pst_plugin_count_loaded(NULL) == 0)
    return;
  GMainContext *context = g_main_loop_get_context(daemon->loop);
  guint limit_ms = daemon->config->server.timeout_shutdown_ms;
  gboolean expired = FALSE;
  GSource *timer = g_timeout_source_new(limit_ms);
  g_source_set_callback(timer, daemon_flag_set, &expired, NULL);
  g_source_attach(timer, context);
  while (!expired && pst_plugin_count_loaded(NULL) > 0)
    g_main_context_iteration(context, TRUE);
  g_source_destroy(timer);
  g_source_unref(timer);
  g_autoptr(GString) names = g_string_new(NULL);
  if (pst_plugin_count_loaded(names) > 0)
    g_warning("shutdown: plugins still hold calls after %u ms, exiting "
              "without their shutdown(): %s",
              limit_ms, names->str);
}

static void daemon_free(PstDaemon *daemon) {
  g_clear_pointer(&daemon->server, pst_server_free);
  g_clear_pointer(&daemon->control, pst_control_free);
  /* Waits for the delivery attempts under way. */
  g_clear_pointer(&daemon->queue_manager, pst_queue_manager_free);
  /* After the last delivery: it closes the idle connections. */
  g_clear_pointer(&daemon->connection_cache, pst_smtp_cache_free);
  pst_local_helper_stop();
  /* DNS before the plugins: stopping it runs the last callbacks of the
   * lookups in flight, which are plugin code. */
  pst_dns_stop();
  g_clear_pointer(&daemon->generation, pst_generation_unref);
  if (daemon->loop != NULL && daemon->config != NULL)
    daemon_unload_plugins(daemon);
  /* Waits for every commit already handed to the syncer. */
  g_clear_pointer(&daemon->spool, pst_spool_close);
  g_clear_pointer(&daemon->config, pst_config_unref);
  g_clear_pointer(&daemon->loop, g_main_loop_unref);
  g_free(daemon->config_path);
}

/* --check: the configuration and every plugin's init, no sockets. */
static int daemon_check(PstDaemon *daemon, gboolean verbose) {
  g_autoptr(GError) error = NULL;
  g_autoptr(PstPluginSet) plugins = pst_plugin_set_load(daemon->config, &error);
  g_autoptr(PstGeneration) generation =
      plugins != NULL
          ? daemon_generation_new(daemon, daemon->config, plugins, NULL, NULL)
          : NULL;
  if (generation == NULL ||
      !pst_transport_check_listeners(
          daemon->config, pst_generation_get_transport(generation), &error) ||
      !pst_queue_manager_check_config(generation, &pst_delivery_deliverer,
                                      &error)) {
    daemon_fail(daemon, error->message);
    return 1;
  }
  g_autofree char *files = g_strjoinv(", ", daemon->config->files);
  printf("postiliond: configuration OK (%s)\n", files);
  g_autoptr(GString) origins = g_string_new(NULL);
  pst_config_describe_plugins(daemon->config, "postiliond", origins);
  fputs(origins->str, stdout);
  if (verbose) {
    g_autoptr(GString) chains = g_string_new(NULL);
    pst_plugin_set_describe(plugins, daemon->config, chains);
    fputs(chains->str, stdout);
  }
  return 0;
}

int pst_daemon_main(int argc, char **argv) {
  PstDaemonOptions options = {0};
  if (!daemon_parse_options(&argc, &argv, &options))
    return 2;
  if (options.version) {
    printf("postiliond %s (plugin ABI %d.%d)\n", PST_VERSION, PST_ABI_MAJOR,
           PST_ABI_MINOR);
    return 0;
  }
  pst_log_init(PST_LOG_STDERR, options.verbose);
  signal(SIGPIPE, SIG_IGN);
  /* A file size limit makes a spool write fail (451), not kill us. */
  signal(SIGXFSZ, SIG_IGN);

  PstDaemon daemon = {.ready_fd = -1};
  daemon.config_path =
      options.config != NULL ? options.config : g_strdup(PST_CONFIG_DEFAULT_PATH);
  g_autoptr(GError) error = NULL;
  daemon.config = pst_config_load(daemon.config_path, &error);
  int status = 1;
  if (daemon.config == NULL) {
    daemon_fail(&daemon, error->message);
  } else if (options.check) {
    status = daemon_check(&daemon, options.verbose);
  } else {
    if (!options.foreground) {
      daemon.ready_fd = daemon_detach();
      pst_log_init(PST_LOG_SYSLOG, options.verbose);
    }
    daemon.loop = g_main_loop_new(NULL, FALSE);
    if (!daemon_start(&daemon, &error)) {
      daemon_fail(&daemon, error->message);
    } else {
      pst_server_start(daemon.server);
      daemon_report_ready(&daemon);
      g_main_loop_run(daemon.loop);
      g_message("stopped");
      status = 0;
    }
  }
  daemon_free(&daemon);
  return status;
}
