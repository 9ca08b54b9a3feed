"""``vidtrack keys DIR``: make CURVE key pairs for authenticated, encrypted tcp sockets."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("keys", help="create CURVE keys (server + client) for security.keys_dir")
    p.add_argument("dir", help="folder to create the keys in")
    p.set_defaults(func=main)


def main(args) -> int:
    from wire.transport import generate_keys

    path = generate_keys(args.dir)
    print(f"wrote CURVE keys to {path}/ (server.key*, client.key*, authorized/client.key); "
          f"set [security] keys_dir = \"{path}\" on every host, and give clients only client.key_secret, "
          "client.key and server.key")
    return 0
