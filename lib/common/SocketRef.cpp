#include "common/SocketRef.h"
#include <sys/stat.h>
#include <unistd.h>

namespace callhome {
SocketRef SocketRef::of(int fd) noexcept
{
    SocketRef r;
    struct stat st { };
    if (fd >= 0 && ::fstat(fd, &st) == 0) {
        r.fd = fd;
        r.dev = st.st_dev;
        r.ino = st.st_ino;
    }
    return r;
}

void SocketRef::closeIfStillOurs() const noexcept
{
    struct stat st { };
    if (fd >= 0 && ::fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino) {
        ::close(fd);
    }
}
} // namespace callhome
