"""Create Superset's admin user, or reset its password: what `superset fab create-admin` and `fab reset-password`
do, with the password read from standard input instead of a command line (where `ps` shows it to everyone).

    printf %s "$PASSWORD" | python set_admin.py USERNAME      (in Superset's Python environment)

Used by `streampulse superset up` (stack/superset.py) and by docker-compose.yml's superset service.
"""

import sys

from superset.app import create_app


def main() -> None:
    username, password = sys.argv[1], sys.stdin.read()
    if not password:
        sys.exit("no password on standard input")
    with create_app().app_context():
        from flask import current_app

        sm = current_app.appbuilder.sm
        user = sm.find_user(username=username)
        if user:
            sm.reset_password(user.id, password)
            print("password reset")
        elif sm.add_user(username, "StreamPulse", "Admin", f"{username}@localhost",
                         sm.find_role(sm.auth_role_admin), password):
            print("created")
        else:
            sys.exit(f"Flask-AppBuilder did not create user {username} (see the messages above)")


if __name__ == "__main__":
    main()
