"""Misbehaving servers for the remote fault cases, each a subprocess bound to 127.0.0.1 on a free port.

`python tests/fake_servers.py silent` accepts every connection and never answers (reads and discards);
`python tests/fake_servers.py garbage CODE` answers every request with HTTP CODE and a 14-line HTML page, as
a proxy or a non-NDIF web server would. Each prints its port on the first line of stdout, then serves until
killed (the test fixture stops it by PID).
"""

import socket
import sys
import threading

PAGE = """<!DOCTYPE html>
<html>
<head>
<title>{code} Error</title>
<style>body {{ font-family: sans-serif; }}</style>
</head>
<body>
<center><h1>{code} Error</h1></center>
<hr>
<p>The proxy could not handle the request.</p>
<p>Reference #18.2f4e</p>
<center>fake-server</center>
</body>
</html>
"""


def silent(conn: socket.socket) -> None:
    with conn:
        while conn.recv(65536):
            pass


def garbage(conn: socket.socket, code: int) -> None:
    with conn:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        body = PAGE.format(code=code).encode()
        conn.sendall(f"HTTP/1.1 {code} Error\r\nContent-Type: text/html\r\nContent-Length: {len(body)}\r\n"
                     f"Connection: close\r\n\r\n".encode() + body)


def main() -> None:
    kind = sys.argv[1]
    server = socket.create_server(("127.0.0.1", 0))
    print(server.getsockname()[1], flush=True)
    while True:
        conn, _ = server.accept()
        args = (conn,) if kind == "silent" else (conn, int(sys.argv[2]))
        threading.Thread(target=silent if kind == "silent" else garbage, args=args, daemon=True).start()


if __name__ == "__main__":
    main()
