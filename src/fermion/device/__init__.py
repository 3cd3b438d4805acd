"""The simulated device: DCT image, storage, boot, faults, key-backup helper and device links.

Modules: ``dct`` (the flash image by field), ``platforms``, ``store`` (device folders in the data
dir), ``builtin`` (the compiled-in backup cloud), ``boot`` (key regeneration and key-error bits),
``faults``, ``keyhelper`` (DeviceKeyHelperRK) and ``link`` (how ``keys`` commands reach a DCT).
"""
