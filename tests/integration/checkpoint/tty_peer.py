"""The far side of a container's terminal, for tests/integration/tests/checkpoint.rs in the VM.

  tty_peer.py console SOCK LOG    listen on SOCK (a --console-socket), take the pty master sent there
  tty_peer.py shell LOG -- CMD... run CMD with a new pty's slave as its stdio (a shell job's terminal)

Either way it then copies what the terminal prints to LOG and types into it whatever appears in the file
LOG.type (removed once typed), until the terminal hangs up or LOG.stop appears. Its pid is in LOG.pid.
"""
import os, select, socket, subprocess, sys, time

def serve(master, log):
    os.set_blocking(master, False)
    with open(log, "ab", buffering=0) as out:
        while not os.path.exists(log + ".stop"):
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    data = b""
                if not data:
                    # EIO: no process holds the slave. A checkpointed job comes back on another terminal.
                    time.sleep(0.1)
                    continue
                out.write(data)
            if os.path.exists(log + ".type"):
                with open(log + ".type", "rb") as f:
                    os.write(master, f.read())
                os.unlink(log + ".type")

def main():
    mode = sys.argv[1]
    if mode == "console":
        sock_path, log = sys.argv[2], sys.argv[3]
        open(log + ".pid", "w").write(str(os.getpid()))
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(sock_path)
        srv.listen(1)
        conn, _ = srv.accept()
        _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        serve(fds[0], log)
    else:
        log, cmd = sys.argv[2], sys.argv[4:]
        open(log + ".pid", "w").write(str(os.getpid()))
        master, slave = os.openpty()
        p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave)
        rc = p.wait()
        open(log + ".rc", "w").write(str(rc))
        os.close(slave)
        serve(master, log)

main()
