#ifndef C_AUTO_SSL_SPAWN_H
#define C_AUTO_SSL_SPAWN_H

#include <spawn.h>

/// glibc's `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34): the child closes every
/// descriptor from `from` up, after the file actions added before it. Swift's Glibc module does
/// not declare GNU extensions, hence this wrapper. Returns 0 or an errno value.
int autossl_spawn_add_close_from(posix_spawn_file_actions_t *_Nonnull actions, int from);

/// `pipe2(fds, O_CLOEXEC)`: both ends close-on-exec from the moment they exist, so a child that
/// another thread spawns meanwhile cannot inherit them. Returns 0, or -1 with errno set.
int autossl_pipe_cloexec(int fds[_Nonnull 2]);

#endif
