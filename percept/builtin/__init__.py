"""percept's built-in parts, one family per module, each registering itself through the plugin hooks.

The registry imports these modules by name (``percept.registry.BUILTIN_MODULES``); nothing imports
them otherwise, so ``import percept`` loads none of them. Each family module holds its code, its
pretrained records (stated with its registration) and its ``register_*`` hook implementation:

- torchvision backbones: :mod:`~percept.builtin.alexnet`, :mod:`~percept.builtin.vgg`,
  :mod:`~percept.builtin.squeezenet`, :mod:`~percept.builtin.resnet`, :mod:`~percept.builtin.densenet`,
  :mod:`~percept.builtin.mobilenet`, :mod:`~percept.builtin.mnasnet`, :mod:`~percept.builtin.shufflenet`,
  :mod:`~percept.builtin.efficientnet`, :mod:`~percept.builtin.convnext`, :mod:`~percept.builtin.regnet`,
  :mod:`~percept.builtin.inception`, :mod:`~percept.builtin.vit`, :mod:`~percept.builtin.swin`,
  :mod:`~percept.builtin.maxvit`, :mod:`~percept.builtin.segmentation` (shared machinery:
  :mod:`~percept.builtin._torchvision`);
- :mod:`~percept.builtin.timm` (any timm model, cut into stages by :mod:`~percept.builtin.timm_stages`),
  :mod:`~percept.builtin.kornia` (non-deep backbones);
- readouts: :mod:`~percept.builtin.readouts`, :mod:`~percept.builtin.descriptors`;
- distances: :mod:`~percept.builtin.distances`, :mod:`~percept.builtin.ssim`, :mod:`~percept.builtin.style`;
- published metrics: :mod:`~percept.builtin.lpips` (everything LPIPS), :mod:`~percept.builtin.dists`
  (everything DISTS: the L2-pooling VGG16, the distance, the weights, the preset).
"""
