"""OS helpers several programs share: users and groups without NSS, utmp/wtmp.
Imports only the standard library.
"""
