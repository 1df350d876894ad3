def get_config():
    raise ValueError("needs an argument")
