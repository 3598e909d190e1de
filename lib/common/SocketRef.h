#pragma once
#include <sys/types.h>

namespace callhome {
/**
 * Remembers which socket a descriptor number referred to, so that it can be closed after a C library is done with
 * it, whether or not that library closed it: libssh 0.10 never closes a descriptor given by SSH_OPTIONS_FD, while
 * libnetconf2 closes it only when the transport was already down. Closing by number alone could hit a new connection
 * that another thread got under the same number in the meantime; the inode check prevents that.
 */
struct SocketRef {
    int fd = -1;
    dev_t dev = 0;
    ino_t ino = 0;

    static SocketRef of(int fd) noexcept;
    /** Closes `fd` if it is still open on the same socket. */
    void closeIfStillOurs() const noexcept;
};
} // namespace callhome
