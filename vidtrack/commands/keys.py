"""``vidtrack keys DIR``: make CURVE key pairs for authenticated, encrypted tcp sockets."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("keys", help="create CURVE keys (server, stages' client, subscriber) for security.keys_dir")
    p.add_argument("dir", help="folder to create the keys in")
    p.set_defaults(func=main)


def main(args) -> int:
    from wire.transport import generate_keys

    path = generate_keys(args.dir)
    print(f"wrote CURVE keys to {path}/ (secret keys 0600, folder 0700):\n"
          f"  stage hosts: set [security] keys_dir = \"{path}\" (server.key*, client.key*, authorized/)\n"
          f"  subscribers: give them only server.key and subscriber.key_secret, and run "
          f"`vidtrack subscribe --keys DIR`; their key reads the events socket and nothing else")
    return 0
