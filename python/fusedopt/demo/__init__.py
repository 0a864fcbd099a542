"""``fusedopt demo``: the classic pictures of gradient descent, drawn with fusedopt's optimizers.

* :mod:`.paths` — every optimizer's trajectory on a loss surface (a still or an animation);
* :mod:`.regression` — batch GD vs SGD vs mini-batch on a linear regression, and lr = 1 on y = x²;
* :mod:`.train` — the NumPy MLP trained with each optimizer and each initializer.

They need matplotlib (and Pillow for GIFs, scikit-learn for the digits data): ``pip install
'fusedopt[demo]'``.
"""
