"""vm_data: subject-highlight preprocessing of video datasets, filters, augmentation, the training dataset."""
