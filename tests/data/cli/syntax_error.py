def get_config(:
    pass
