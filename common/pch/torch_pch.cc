// Anchor translation unit for the LibTorch precompiled header target.
