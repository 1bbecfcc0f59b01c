"""The kinds of wire: gpio, serial, i2c, audio. Each is an interface with backends."""
