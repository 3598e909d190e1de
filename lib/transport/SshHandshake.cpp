// libssh client handshake on an accepted socket: see SshHandshake.h
